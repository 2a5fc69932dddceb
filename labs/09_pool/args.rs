//! The lab's command line: `cargo run --bin pool -- --help` prints it.

use clap::{Parser, ValueEnum};
use proclab::Common;
use std::time::Duration;

/// A process pool built from fork, pipes and waitpid, compared with threads, rayon and Python.
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
    /// How long the queue stays full with the producer blocked, in ms (0 to 60000), to look
    /// at it with ps (or use --step).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub hold_ms: u64,
    /// How long a child may take to answer (a result, its exit) before the lab calls it
    /// stuck, in ms (1000 to 600000).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1000..=600_000))]
    pub deadline_ms: u64,
    /// Time Python's multiprocessing.Pool.map on the same tasks: when python3 is on PATH, or never.
    #[arg(long, value_enum, default_value_t = PythonMode::Auto)]
    pub python: PythonMode,
    #[command(flatten)]
    pub common: Common,
}

impl Args {
    /// `--deadline-ms` as a duration.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PythonMode {
    Auto,
    Never,
}
