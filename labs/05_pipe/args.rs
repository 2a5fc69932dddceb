//! The pipe lab's command line: every flag with its default and its range.

use clap::Parser;
use proclab::Common;

/// Pipes: intact bytes, EOF, capacity, PIPE_BUF atomicity, two-way, SIGPIPE, throughput.
#[derive(Parser)]
#[command(name = "pipe", version)]
pub struct Args {
    /// Size of the one-way message of section 1, in bytes (1 to 67108864).
    #[arg(long, default_value_t = 256 << 10, value_parser = clap::value_parser!(u32).range(1..=(64 << 20)))]
    pub bytes: u32,
    /// How long a reader or writer may sleep before the watchdog calls it stuck, in ms
    /// (50 to 10000).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(50..=10_000))]
    pub deadline_ms: u64,
    /// Writer processes racing on one pipe in section 4 (2 to 16).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..=16))]
    pub writers: u32,
    /// Records each writer writes in section 4 (1 to 1000).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub records: u32,
    /// Size of the "big" records of section 4, in bytes, more than PIPE_BUF (4097 to
    /// 1048576).
    #[arg(long, default_value_t = 128 << 10, value_parser = clap::value_parser!(u32).range(4097..=(1 << 20)))]
    pub big: u32,
    /// Size `F_SETPIPE_SZ` asks for in section 3, in bytes (4096 to 1048576, the default
    /// /proc/sys/fs/pipe-max-size).
    #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u32).range(4096..=(1 << 20)))]
    pub pipe_size: u32,
    /// Round trips per CPU placement in section 5 (10 to 200000).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(10..=200_000))]
    pub rounds: u32,
    /// MiB sent through the pipe for each write size in section 7 (1 to 1024).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub mib: u32,
    #[command(flatten)]
    pub common: Common,
}
