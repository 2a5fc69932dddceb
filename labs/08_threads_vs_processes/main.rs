//! # threads-vs-processes: the same work done the thread way and the process way
//!
//! Start a worker, keep idle ones, send one byte there and back, hand over 64 MiB and
//! split a CPU-bound job, each with threads and with forked processes; then the limits
//! on how many of each, and a table of the chapter's claims with whether they held.
//!
//! Chapter: book/src/08-threads-vs-processes.md

use clap::Parser;
use proclab::{Common, Lab};

mod bulk;
mod claims;
mod compute;
mod idle_memory;
mod limits;
mod memory;
mod round_trip;
mod startup;
mod tvp;
mod wait;

/// Threads versus processes: start-up, memory, messages, bulk data and compute, measured.
#[derive(Parser)]
#[command(name = "threads-vs-processes", version)]
struct Args {
    /// How many workers to start and join each way, one after the other, for the
    /// start-up figures (10 to 5000).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(10..=5000))]
    spawns: u32,
    /// How many idle workers to keep at once for the memory figures (1 to 500).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=500))]
    idle: u32,
    /// How many one-byte round trips to time (10 to 200000).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(10..=200_000))]
    rounds: u32,
    /// The largest compute job, as a power of two of elements (12 to 30; the sweep goes
    /// from 2^10 up).
    #[arg(long, default_value_t = 22, value_parser = clap::value_parser!(u32).range(12..=30))]
    max_job: u32,
    #[command(flatten)]
    common: Common,
}

fn main() {
    let args = Args::parse();
    let mut lab = Lab::start(
        "threads-vs-processes",
        "a thread starts faster and costs less memory than a process, bulk data moves \
         between threads without a copy, and the other claims are reported as measured \
         on this run",
        &args.common,
    );
    // Tests only: every "thread" worker is a forked process (sections 1, 2 and 4).
    let as_processes = proclab::test_removes("threads_are_processes");
    let mut table = claims::Table::default();

    lab.section("1. Start a worker that does nothing, and wait for it");
    startup::run(&mut lab, &mut table, args.spawns, as_processes);
    lab.section("2. Idle workers: what each one costs in memory");
    idle_memory::run(&mut lab, &mut table, args.idle, as_processes);
    lab.section("3. One byte there and back");
    round_trip::run(&mut lab, &mut table, args.rounds);
    lab.section("4. Hand 64 MiB to the other worker");
    bulk::run(&mut lab, &mut table, as_processes);
    lab.section("5. A CPU-bound job split between workers");
    compute::run(&mut lab, &mut table, args.max_job);
    lab.section("6. How many of each this machine allows");
    limits::run(&mut lab);
    lab.section("7. The table, and which claims held");
    table.show(&mut lab);
    lab.finish()
}
