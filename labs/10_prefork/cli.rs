//! The command line of the prefork lab: its flags, their defaults and their conflicts.

use clap::{CommandFactory, Parser, ValueEnum};
use proclab::Common;

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub enum Model {
    /// One process per worker (prefork).
    Process,
    /// One process, one thread per worker.
    Threads,
}

/// A prefork HTTP/1.1 server: a supervising master and N workers blocking in accept().
///
/// GET / (the worker's pid), GET /work?ms=N (sleeps, N <= 10000), GET /cpu?n=N (burns CPU,
/// N <= 50000000). Signals to the master: TERM graceful stop, INT/QUIT fast stop, TTIN one
/// worker more, TTOU one fewer, HUP replace every worker one by one.
#[derive(Parser)]
#[command(name = "prefork", version)]
pub struct Args {
    /// TCP port on 127.0.0.1 (0 to 65535); 0 lets the kernel pick a free one (printed)
    /// [default: 8080, 0 with --demo]
    #[arg(long, value_parser = clap::value_parser!(u16))]
    port: Option<u16>,
    /// Number of workers (1 to 64) [default: 2 x cores + 1, 3 with --demo]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    workers: Option<u32>,
    /// Workers as processes (prefork) or as threads of one process.
    #[arg(long, value_enum, default_value_t = Model::Process)]
    pub model: Model,
    /// Each worker opens its own listening socket on the port with SO_REUSEPORT, and the
    /// kernel spreads connections over the sockets by a hash of the addresses.
    #[arg(long)]
    pub reuseport: bool,
    /// A request head (or an idle keep-alive connection) slower than this is dropped, in ms
    /// (100 to 60000).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub timeout_ms: u64,
    /// Graceful stop (SIGTERM): how long workers get to finish their requests before
    /// SIGKILL, in ms (100 to 60000).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub grace_ms: u64,
    /// Workers exit with code 70 as soon as they start (a broken deploy): shows the back-off.
    #[arg(long)]
    pub broken_workers: bool,
    /// Run the scripted scenario against itself (port 0, 3 workers) and exit with a verdict.
    #[arg(long, conflicts_with_all = ["reuseport", "broken_workers"])]
    pub demo: bool,
    #[command(flatten)]
    pub common: Common,
}

impl Args {
    /// The command line; a bad one (or `--demo --model threads`) exits 2 with nothing started.
    pub fn get() -> Args {
        let args = Args::parse();
        let conflict = if args.demo && args.model == Model::Threads {
            Some("--demo runs the process model only")
        } else if args.demo && args.workers == Some(1) {
            Some("--demo needs at least 2 workers to show a spread")
        } else {
            None
        };
        if let Some(why) = conflict {
            let kind = clap::error::ErrorKind::ArgumentConflict;
            Args::command().error(kind, why).exit(); // exit 2, nothing started
        }
        args
    }

    /// `--workers`, or its default: 3 for the demo, else 2 x cores + 1 (at most 64).
    pub fn workers(&self) -> usize {
        let cores =
            std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        self.workers.unwrap_or(if self.demo { 3 } else { (2 * cores + 1).min(64) })
            as usize
    }

    /// `--port`, or its default: 0 (the kernel picks) for the demo, else 8080.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(if self.demo { 0 } else { 8080 })
    }
}
