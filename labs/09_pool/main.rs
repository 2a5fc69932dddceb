//! # pool: a process pool from fork, pipes and waitpid, and a bounded queue
//!
//! Workers are forked once and fed tasks on demand over pipes; `map` returns one result
//! per input, in order, even when a worker is killed mid-task (reaped, replaced, its task
//! retried once). A pipe shrunk to one page is a bounded queue: back-pressure and poison
//! pills. Then the same job with threads, rayon and Python's multiprocessing.
//!
//! Chapter: book/src/09-pool.md

use clap::{Parser, ValueEnum};
use proclab::{Common, Lab};
use std::time::Duration;

// One file per section of the chapter, in its order, then the plumbing.
mod killed_worker; // 3. a worker killed in the middle of a task
mod map; // 2. map: one result per input, in order
pub mod pool; // the master's records, and waitpid with a deadline
mod python; // runs book/scripts/pool_mp.py
mod queue; // 4. a bounded queue: back-pressure, poison pills, fairness
mod shutdown; // 6. a poison pill to each worker
mod start; // 1. fork the workers once
pub mod task; // the job, and its ways of misbehaving
pub mod threads; // the thread pool's map, and rayon
mod three_ways; // 5. the same job three ways, and Python
mod wire; // messages on a pipe
mod worker; // a worker's loop after fork

pub use pool::ProcPool;

/// A process pool built from fork, pipes and waitpid, against threads, rayon and Python.
#[derive(Parser)]
#[command(name = "pool", version)]
pub struct Args {
    /// Worker processes in the pool, and threads in the thread pools (1 to 64).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: u32,
    /// Tasks in flight per worker (1 to 64): 1 is pure on demand, more hides the hand-off.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub depth: u32,
    /// Tiny tasks in the timing of section 5, also given to Python (100 to 200000).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(100..=200_000))]
    pub tasks: u32,
    /// Consumers of the bounded queue in section 4 (1 to 16).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub consumers: u32,
    /// How long the queue stays full with the producer blocked, in ms (0 to 60000), to
    /// look at it with ps (or use --step).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub hold_ms: u64,
    /// How long a child may take to answer (a result, its exit) before the lab calls it
    /// stuck, in ms (1000 to 600000).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1000..=600_000))]
    pub deadline_ms: u64,
    /// Time Python's multiprocessing.Pool.map on the same tasks: when python3 is on
    /// PATH, or never.
    #[arg(long, value_enum, default_value_t = PythonMode::Auto)]
    pub python: PythonMode,
    #[command(flatten)]
    pub common: Common,
}

impl Args {
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PythonMode {
    Auto,
    Never,
}

fn main() {
    let args = Args::parse();
    let mut lab = Lab::start(
        "pool",
        "a process pool built from fork, pipes and waitpid returns exactly one result \
         per input in order, survives workers killed mid-task (replaced, task retried \
         once), and a bounded queue blocks its producer when full",
        &args.common,
    );
    lab.section("1. Fork the workers once");
    let mut pool = start::run(&mut lab, &args);
    lab.section("2. map: one result per input, in order");
    map::run(&mut lab, &mut pool);
    lab.section("3. A worker killed in the middle of a task");
    killed_worker::run(&mut lab, &mut pool);
    lab.section("4. A bounded queue: back-pressure, poison pills, fairness");
    queue::run(&mut lab, &args);
    lab.section("5. The same job three ways");
    three_ways::run(&mut lab, &mut pool, &args);
    lab.section("6. Shutdown: a poison pill to each worker");
    shutdown::run(&mut lab, pool);
    lab.finish()
}
