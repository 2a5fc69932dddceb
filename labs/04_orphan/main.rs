//! # orphan: the parent dies first
//!
//! A child whose parent exits lives on and is re-parented at once: to the nearest
//! ancestor that is a child subreaper, or else to PID 1. Case A: the lab is an ordinary
//! process and the kernel picks the adopter. Case B: the lab is a subreaper; it adopts
//! the orphan and reaps it.
//!
//! Chapter: book/src/04-orphan.md

mod generations;
mod plain;
mod subreaper;
mod wire;

use clap::Parser;
use proclab::lifeline::Lifeline;
use proclab::{say, Common, Lab, OrDie};

/// orphan: a child outlives its parent and is adopted by PID 1 or the nearest subreaper.
#[derive(Parser)]
#[command(name = "orphan", version)]
struct Args {
    /// How long the orphan lives after reporting its adoption, in ms (0 to 10000); it
    /// then exits by itself.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(i32).range(0..=10_000))]
    linger_ms: i32,
    /// Skip case A, where the orphan's adopter is not the lab's to control (use this where
    /// PID 1 does not reap: the orphan's zombie would stay until it does).
    #[arg(long)]
    skip_plain: bool,
    #[command(flatten)]
    common: Common,
}

fn main() {
    let args = Args::parse();
    let mut lab = Lab::start(
        "orphan",
        "when a parent exits first its child lives on and is re-parented: to PID 1 or \
         the nearest child subreaper; with PR_SET_CHILD_SUBREAPER the grandparent adopts \
         it deterministically and reaps it",
        &args.common,
    );
    // The orphans end within a moment of the lab's end, even if it is SIGKILLed.
    let lifeline = Lifeline::new().or_die("pipe2");

    lab.section("A. The parent exits; the kernel picks the adopter");
    let above = plain::who_may_adopt(&mut lab);
    if args.skip_plain {
        say!("case A skipped (--skip-plain): no orphan is left to an adopter the lab does not control");
    } else {
        plain::run(&mut lab, &above, &lifeline, args.linger_ms);
    }

    lab.section("B. The lab is a child subreaper: it adopts and reaps the orphan");
    subreaper::run(&mut lab, &above, &lifeline, args.linger_ms);

    lab.finish()
}
