//! # io-models: one HTTP app served four ways, measured under four loads
//!
//! The same endpoint (C ms of CPU, then W ms of waiting) served by prefork processes,
//! threads (one per connection, and a pool of N), one hand-written epoll loop, and N
//! loops on SO_REUSEPORT sockets; then the worker-count rule swept, and Node's cluster
//! compared with blocking accept. `--serve MODEL` runs one server until Ctrl-C.
//!
//! Chapter: book/src/15-io-models.md

use clap::{Parser, ValueEnum};
use proclab::{Common, Lab};

mod app;
mod blocking;
mod cpu_only;
mod cpuview;
mod eventloop;
// The prefork lab's HTTP/1.1 parser and writer (RFC 9112), shared, not copied; this
// lab uses a part of them.
#[path = "../10_prefork/fields.rs"]
#[allow(dead_code)]
mod fields;
#[path = "../10_prefork/http.rs"]
#[allow(dead_code)]
mod http;
mod idle;
mod launch;
mod load;
mod loopkit;
mod models;
mod node;
mod node_run;
mod plan;
mod point;
mod prefork;
mod procview;
#[path = "../10_prefork/request_line.rs"]
#[allow(dead_code)]
mod request_line;
mod reuseport;
mod rule;
mod server;
mod slow;
mod sweep;
mod threads;
mod waiting;
#[path = "../10_prefork/wire.rs"]
#[allow(dead_code)]
mod wire;
mod wrk;

/// The servers: one app, served four ways (the thread way in two).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Model {
    /// (a) N processes blocking in accept on one socket.
    Prefork,
    /// (b) one thread per connection.
    Threads,
    /// (b) a fixed pool of N threads blocking in accept.
    Pool,
    /// (c) one epoll event loop in one thread.
    Loop,
    /// (d) N event loops, one per core, each with its own SO_REUSEPORT socket.
    Loops,
}

/// The parts of the lab, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Part {
    Models,
    Node,
    Cpu,
    Waiting,
    Idle,
    Slow,
    Wrk,
    Sweep,
}

/// One HTTP app served four ways (prefork, threads, an epoll loop, N loops), measured
/// under four loads; the worker-count rule and Node's cluster tested.
///
/// The app: GET /?cpu_ms=C&wait_ms=W burns C ms of CPU, then waits W ms (C <= 1000,
/// W <= 10000); without a query, --cpu-ms and --wait-ms.
#[derive(Parser)]
#[command(name = "io-models", version)]
pub struct Args {
    /// The cost of one request of the loads, in ms (2 to 100): C ms of CPU plus W ms of
    /// waiting, split by the load's I/O share.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(2..=100))]
    pub request_ms: u64,
    /// Length of each load's measuring window, in ms (100 to 10000); a point of the
    /// sweep gets half [default: 500, 150 with --quick]
    #[arg(long, value_parser = clap::value_parser!(u64).range(100..=10_000))]
    pub window_ms: Option<u64>,
    /// Connections of the closed-loop client in loads 1, 2 and 4 (1 to 256).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub clients: u32,
    /// Idle connections held open in load 3 (10 to 10000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(10..=10_000))]
    pub idle: u32,
    /// Slow clients in load 4 (1 to 256), each sending its request one byte at a time.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub slow: u32,
    /// How long a slow client waits between two bytes, in ms (1 to 1000).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub slow_step_ms: u64,
    /// Workers of the prefork and pool models (1 to 64), and event loops of --serve
    /// loops [default: 2 x cores + 1; loops: cores]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: Option<u32>,
    /// How long every server keeps an idle connection, and waits for a request head, in
    /// ms (100 to 600000).
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub keepalive_ms: u64,
    /// Connections an event loop holds at most, like nginx's worker_connections (16 to
    /// 100000); beyond it, the loop stops accepting until one closes.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(16..=100_000))]
    pub worker_connections: u32,
    /// Shorter windows, a sparser sweep, wrk on one model (about 20 s instead of 50).
    #[arg(long)]
    pub quick: bool,
    /// Run only these parts (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub part: Vec<Part>,
    /// Serve one model on 127.0.0.1:--port until Ctrl-C, instead of the lab.
    #[arg(long, value_enum)]
    pub serve: Option<Model>,
    /// With --serve: the port (0 to 65535; 0 lets the kernel pick) [default: 8080]
    #[arg(long, value_parser = clap::value_parser!(u16))]
    pub port: Option<u16>,
    /// With --serve: the CPU part of a request without a query, in ms (0 to 1000).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub cpu_ms: u64,
    /// With --serve: the waiting part of a request without a query, in ms (0 to 10000).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub wait_ms: u64,
    /// (internal) join the port with SO_REUSEPORT (a loop of --serve loops).
    #[arg(long, hide = true)]
    pub reuseport: bool,
    /// (internal) the pipe on which a started server says its port.
    #[arg(long, hide = true)]
    pub ready_fd: Option<i32>,
    #[command(flatten)]
    pub common: Common,
}

const CLAIM: &str = "the same app served four ways: on CPU work no model passes the \
    cores and each turns its CPU into answers; one event loop holds idle connections in \
    one thread and waits by timers, while N blocking workers cannot serve the next \
    client; a connection costs far more as a thread or a process than in a loop; a \
    blocking worker holds no core through its wait; Node's cluster round-robins \
    connections, not requests";

fn main() {
    let args = Args::parse();
    if let Some(model) = args.serve {
        server::serve(model, &args); // a server, not the lab: never returns
    }
    let mut lab = Lab::start("io-models", CLAIM, &args.common);
    let plan = plan::Plan::new(&args);
    if plan.runs(&[Part::Models]) {
        lab.section("1. One app, five servers");
        models::run(&mut lab, &plan);
    }
    if plan.runs(&[Part::Node]) {
        lab.section("2. Who gets the connection: Node's cluster, blocking accept");
        node::run(&mut lab, &plan);
    }
    if plan.runs(&[Part::Cpu, Part::Waiting, Part::Idle, Part::Slow, Part::Wrk]) {
        lab.section("3. Four loads on every model");
        let mut waiting = Vec::new();
        if plan.runs(&[Part::Cpu]) {
            cpu_only::run(&mut lab, &plan);
        }
        if plan.runs(&[Part::Waiting]) {
            waiting = waiting::run(&mut lab, &plan);
        }
        if plan.runs(&[Part::Idle]) {
            idle::run(&mut lab, &plan);
        }
        if plan.runs(&[Part::Slow]) {
            slow::run(&mut lab, &plan);
        }
        if plan.runs(&[Part::Wrk]) {
            wrk::run(&mut lab, &plan, &waiting);
        }
    }
    if plan.runs(&[Part::Sweep]) {
        lab.section("4. How many workers? The rule, swept");
        sweep::run(&mut lab, &plan);
    }
    lab.finish()
}
