//! # fork: one process becomes two
//!
//! `fork()` copies the calling process and returns twice: 0 in the child, the child's
//! pid in the parent. Part 1: the child's writes change its own copy of memory. Part 2:
//! children meet different fates (an exit code, a signal) and the parent reads each
//! one's from the status `waitpid` returns.
//!
//! Chapter: book/src/01-fork.md

mod copy;
mod fates;
mod words;

use clap::Parser;
use proclab::{Common, Lab};
use std::time::Duration;

/// fork: the child's memory is a copy; waitpid returns each child's exit code or signal.
#[derive(Parser)]
#[command(name = "fork", version)]
struct Args {
    /// How many children to fork in part 2, each with its own fate (1 to 64).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    children: u32,
    /// How long the children stay unreaped, in ms (0 to 60000), to look at them with ps.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    linger_ms: u64,
    #[command(flatten)]
    common: Common,
}

/// How long a child may take to report and to end (lab time: `--step` pauses do not
/// count). Every child here does so in microseconds.
const DEADLINE: Duration = Duration::from_secs(5);

fn main() {
    let args = Args::parse();
    let mut lab = Lab::start(
        "fork",
        "fork gives the child a copy of the parent's memory (its writes stay its own); \
         the parent reaps every child with waitpid and reads from the status how it \
         ended: exit code or killing signal",
        &args.common,
    );
    copy::run(&mut lab);
    fates::run(&mut lab, &args);
    lab.finish()
}
