//! The lab's command line: `cargo run --bin pool -- --help` prints it.

use clap::{Parser, ValueEnum};
use proclab::Common;

/// A process pool built from fork, pipes and waitpid, compared with threads, rayon and Python.
#[derive(Parser)]
#[command(name = "pool", version)]
pub struct Args {
    /// Worker processes in the pool (and threads in the thread pools).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: u32,
    /// Tasks in flight per worker: 1 is pure on-demand, more hides the hand-off latency.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub depth: u32,
    /// Tiny tasks in the timing (section 5), also given to Python.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(100..=200_000))]
    pub tasks: u32,
    /// Consumers of the bounded queue (section 4).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub consumers: u32,
    /// How long the queue stays full with the producer blocked, in ms (to look at it with ps).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub hold: u64,
    /// Time Python's multiprocessing.Pool.map on the same tasks: when python3 is on PATH, or never.
    #[arg(long, value_enum, default_value_t = PythonMode::Auto)]
    pub python: PythonMode,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PythonMode {
    Auto,
    Never,
}
