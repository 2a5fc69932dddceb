//! # prefork: a master, its workers and one listening socket
//!
//! A small HTTP/1.1 server in the prefork model (Apache's prefork MPM, gunicorn's sync
//! workers): the master binds one socket, forks N workers that block in `accept4` on it,
//! replaces the dead and stops them on SIGTERM. `--demo` runs the scenario of the chapter
//! against itself and ends with a verdict; `--model threads` is one process with threads.
//!
//! Chapter: book/src/10-prefork.md

use clap::{CommandFactory, Parser, ValueEnum};
use proclab::{Common, Lab, OrDie};
use std::time::Duration;

mod bind_and_fork;
mod client;
mod graceful_stop;
mod http;
mod kill_under_load;
mod master;
mod resize;
mod serve;
mod signals;
mod spread;
mod threads;
mod worker;

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Model {
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
struct Args {
    /// TCP port on 127.0.0.1 (0 to 65535); 0 lets the kernel pick a free one (printed)
    /// [default: 8080, 0 with --demo]
    #[arg(long, value_parser = clap::value_parser!(u16))]
    port: Option<u16>,
    /// Number of workers (1 to 64) [default: 2 x cores + 1, 3 with --demo]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    workers: Option<u32>,
    /// Workers as processes (prefork) or as threads of one process.
    #[arg(long, value_enum, default_value_t = Model::Process)]
    model: Model,
    /// Each worker opens its own listening socket on the port with SO_REUSEPORT, and the
    /// kernel spreads connections over the sockets by a hash of the addresses.
    #[arg(long)]
    reuseport: bool,
    /// A request head (or an idle keep-alive connection) slower than this is dropped, in ms
    /// (100 to 60000).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    timeout_ms: u64,
    /// Graceful stop (SIGTERM): how long workers get to finish their requests before
    /// SIGKILL, in ms (100 to 60000).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    grace_ms: u64,
    /// Workers exit with code 70 as soon as they start (a broken deploy): shows the back-off.
    #[arg(long)]
    broken_workers: bool,
    /// Run the scripted scenario against itself (port 0, 3 workers) and exit with a verdict.
    #[arg(long, conflicts_with_all = ["reuseport", "broken_workers"])]
    demo: bool,
    #[command(flatten)]
    common: Common,
}

impl Args {
    /// `--workers`, or its default: 3 for the demo, else 2 x cores + 1 (at most 64).
    fn workers(&self) -> usize {
        let cores =
            std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        self.workers.unwrap_or(if self.demo { 3 } else { (2 * cores + 1).min(64) })
            as usize
    }

    /// What this run sets out to show.
    fn claim(&self) -> &'static str {
        match (self.demo, self.model) {
            (true, _) => {
                "the kernel spreads connections over workers blocked in accept on one \
                 socket; the master sees each death through SIGCHLD and waitpid and \
                 replaces the worker, so requests keep succeeding; SIGTERM stops them \
                 without losing the request in flight"
            }
            (false, Model::Threads) => "the threads served until told to stop",
            (false, Model::Process) => {
                "the master forked and supervised its workers and, when told to stop, \
                 every worker was reaped and none is left"
            }
        }
    }
}

fn main() {
    let a = Args::parse();
    let n = a.workers();
    if a.demo && (a.model == Model::Threads || n < 2) {
        let why = "--demo runs the process model with at least 2 workers";
        Args::command().error(clap::error::ErrorKind::ArgumentConflict, why).exit();
    }
    let mut lab = Lab::start("prefork", a.claim(), &a.common);
    // The master takes its signals with sigtimedwait: block them before any thread
    // exists (threads inherit the mask).
    let signals = signals::signals(a.demo);
    signals.thread_block().or_die("pthread_sigmask");
    // Tests only: in the demo each worker opens a socket of its own (SO_REUSEPORT).
    let reuseport = a.reuseport || (a.demo && proclab::test_removes("own_socket"));
    let port = a.port.unwrap_or(if a.demo { 0 } else { 8080 });
    let (fd, port) = bind_and_fork::bind_listener(port, reuseport, !reuseport);
    let threads = a.model == Model::Threads;
    if !a.demo {
        bind_and_fork::listening(&mut lab, port, n, threads, reuseport);
    }
    let mut cfg = worker::Cfg::new(fd, port, reuseport, a.timeout_ms);
    cfg.broken = a.broken_workers;
    let grace = Duration::from_millis(a.grace_ms);
    if threads {
        threads::serve(lab, cfg, n, &signals, grace);
    }
    let mut m = master::Master::new(cfg, n, signals, grace);
    if !a.demo {
        m.serve(lab); // until SIGTERM or SIGINT
    }
    bind_and_fork::run(&mut lab, &mut m);
    spread::run(&mut lab, &mut m);
    kill_under_load::run(&mut lab, &mut m);
    graceful_stop::run(&mut lab, &mut m);
    lab.finish()
}
