//! # exec: same process, new program
//!
//! `execvp` replaces the program a process runs and keeps its pid, its parent and its
//! descriptors without close-on-exec; it returns only if it failed (the child then
//! exits 127). Part 4 times three ways to start a program: fork + exec, `posix_spawn`
//! and `std::process::Command`.
//!
//! Chapter: book/src/02-exec.md

mod cloexec;
mod exec_pipe;
mod failure;
mod fd_listing;
mod replace;
mod start_costs;

use clap::Parser;
use proclab::{Common, Lab};
use std::time::Duration;

/// exec: the pid stays, the program changes; a failed exec exits 127; close-on-exec.
#[derive(Parser)]
#[command(name = "exec", version)]
struct Args {
    /// How many times each way of starting /bin/true is timed in part 4 (1 to 5000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=5000))]
    rounds: u32,
    /// MiB of memory to touch before part 4 (0 to 4096): fork must copy the page tables
    /// that map it, posix_spawn (vfork-like) does not.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=4096))]
    ballast: u32,
    #[command(flatten)]
    common: Common,
}

fn main() {
    let args = Args::parse();
    let mut lab = Lab::start(
        "exec",
        "exec replaces the program of a process and keeps its pid, parent and the \
         descriptors without close-on-exec; a failed exec returns to the child, which \
         exits 127",
        &args.common,
    );
    replace::run(&mut lab);
    failure::run(&mut lab);
    cloexec::run(&mut lab);
    start_costs::run(&mut lab, &args);
    lab.finish()
}

/// How long a child may take to exec, fail or end (lab time: `--step` pauses do not
/// count). Each does so in a few milliseconds.
const DEADLINE: Duration = Duration::from_secs(5);
