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
use read::Timing;
use std::time::Duration;

mod attack;
mod behind_nginx;
mod bind_and_fork;
mod body;
mod client;
mod fields;
mod graceful_stop;
mod http;
mod idle_clients;
mod kill_under_load;
mod master;
mod read;
mod request_line;
mod resize;
mod serve;
mod siege;
mod signals;
mod slow_clients;
mod spread;
mod threads;
mod wire;
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
/// N <= 50000000), POST or PUT /upload (reads the body, up to 1 MiB). Signals to the
/// master: TERM graceful stop, INT/QUIT fast stop, TTIN one worker more, TTOU one fewer,
/// HUP replace every worker one by one.
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
    /// How long a new connection may stay silent before it is closed, in ms (0 to 60000;
    /// 0: no limit). With TCP_DEFER_ACCEPT the kernel waits it out, not a worker.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    first_byte_ms: u64,
    /// No TCP_DEFER_ACCEPT: a worker accepts a connection before its first byte and waits
    /// for it itself (for --first-byte-ms).
    #[arg(long)]
    no_defer_accept: bool,
    /// How long a kept-alive connection may wait for its next request, in ms (0 to 60000;
    /// 0: no limit) [default: 2000 as gunicorn, 500 with --demo]
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    keepalive_ms: Option<u64>,
    /// How long a request head (or a body) may take from its first byte, in ms (0 to
    /// 60000; 0: no limit), plus 1 s per --min-rate bytes received, up to --head-max-ms
    /// [default: 5000, 1000 with --demo; Apache: 20000]
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    head_ms: Option<u64>,
    /// The most a head (or a body) may take however fast it comes, in ms (0 to 120000)
    /// [default: 10000, 2000 with --demo; Apache: 40000]
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=120_000))]
    head_max_ms: Option<u64>,
    /// Bytes per second that earn a head one more second (0 to 1000000; 0: none), as
    /// Apache's MinRate.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    min_rate: u64,
    /// Every defence off: no TCP_DEFER_ACCEPT and no deadline (shows the attacks working).
    #[arg(long)]
    no_defences: bool,
    /// A worker leaves after this many requests and the master forks another, as
    /// gunicorn's --max-requests (0 to 1000000; 0: never).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    max_requests: u64,
    /// Each worker's --max-requests plus a random 0 to this (0 to 1000000).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    max_requests_jitter: u64,
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
    /// With --demo: all of it, or some parts (a comma list): the server (sections 1 to
    /// 4), idle clients (5), slow clients (6), nginx in front (7).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "all",
        requires = "demo"
    )]
    part: Vec<Part>,
    /// With --demo: connections that never send a byte (1 to 4000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=4000))]
    idle: u64,
    /// With --demo: slowloris connections, one byte every 200 ms (1 to 1000).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=1000))]
    slow: u64,
    /// With --demo: how long each attack lasts, in ms (500 to 10000).
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u64).range(500..=10_000))]
    attack_ms: u64,
    #[command(flatten)]
    common: Common,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Part {
    All,
    Server,
    Idle,
    Slow,
    Nginx,
}

impl Args {
    /// `--workers`, or its default: 3 for the demo, else 2 x cores + 1 (at most 64).
    fn workers(&self) -> usize {
        let cores =
            std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        self.workers.unwrap_or(if self.demo { 3 } else { (2 * cores + 1).min(64) })
            as usize
    }

    /// The deadlines asked for (read.rs), and the seconds of TCP_DEFER_ACCEPT (0: none).
    fn defences(&self) -> (Timing, i32) {
        let ms = |v: Option<u64>, server: u64, demo: u64| {
            let v = v.unwrap_or(if self.demo { demo } else { server });
            (v > 0 && !self.no_defences).then(|| Duration::from_millis(v))
        };
        let first_byte = ms(Some(self.first_byte_ms), 0, 0);
        let defer_s = match first_byte {
            Some(d) if !self.no_defer_accept => d.as_millis().div_ceil(1000) as i32,
            _ => 0,
        };
        let timing = Timing {
            first_byte,
            deferred: defer_s > 0,
            keepalive: ms(self.keepalive_ms, 2000, 500),
            head: ms(self.head_ms, 5000, 1000),
            head_max: ms(self.head_max_ms, 10_000, 2000).unwrap_or_default(),
            min_rate: self.min_rate,
        };
        (timing, defer_s)
    }

    /// What this run sets out to show.
    fn claim(&self) -> &'static str {
        match (self.demo, self.model) {
            (true, _) => {
                "the kernel spreads connections over workers blocked in accept on one \
                 socket; the master replaces the dead, so requests keep succeeding; \
                 SIGTERM loses no request in flight; idle and slow clients starve blocking \
                 workers, TCP_DEFER_ACCEPT and deadlines defend against idle ones and cut \
                 slow ones, and only a buffering proxy in front serves through many slow \
                 ones"
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
    let threads = a.model == Model::Threads;
    if (a.demo && (threads || n < 2)) || (threads && a.max_requests > 0) {
        let why =
            "--demo and --max-requests need the process model (--demo: 2 workers)";
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
    let (timing, defer_s) = a.defences();
    let listen = bind_and_fork::bind_listener;
    let (fd, port) = listen(port, reuseport, !reuseport, defer_s);
    if !a.demo {
        bind_and_fork::listening(&mut lab, port, n, threads, reuseport);
    }
    let mut cfg = worker::Cfg::new(fd, port, reuseport, timing);
    (cfg.defer_s, cfg.broken) = (defer_s, a.broken_workers);
    (cfg.max_requests, cfg.jitter) = (a.max_requests, a.max_requests_jitter);
    let grace = Duration::from_millis(a.grace_ms);
    if threads {
        threads::serve(lab, cfg, n, &signals, grace);
    }
    let mut m = master::Master::new(cfg, n, signals, grace);
    if !a.demo {
        m.serve(lab); // until SIGTERM or SIGINT
    }
    let part = |p: Part| a.part.contains(&Part::All) || a.part.contains(&p);
    if part(Part::Server) {
        bind_and_fork::run(&mut lab, &mut m);
        spread::run(&mut lab, &mut m);
        kill_under_load::run(&mut lab, &mut m);
        graceful_stop::run(&mut lab, &mut m);
    }
    let d =
        siege::Demo::new(n, (timing, defer_s), a.idle, a.slow, a.attack_ms, cfg);
    if part(Part::Idle) {
        idle_clients::run(&mut lab, &d);
    }
    if part(Part::Slow) {
        slow_clients::run(&mut lab, &d);
    }
    if part(Part::Nginx) {
        behind_nginx::run(&mut lab, &d);
    }
    lab.finish()
}
