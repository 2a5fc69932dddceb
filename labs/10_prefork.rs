//! # prefork: a master, its workers and one listening socket
//!
//! A small but real HTTP/1.1 server in the prefork model (the model of Apache's prefork MPM,
//! gunicorn's sync workers, and nginx's or Node's cluster master/worker split): the master
//! binds one listening socket on 127.0.0.1, forks N workers that each block in `accept()` on
//! that shared socket, and supervises them. It learns of a dead worker from SIGCHLD and
//! `waitpid(-1, WNOHANG)`, logs how it died and forks a replacement (with back-off when
//! workers die young in a loop). SIGTERM stops gracefully, SIGINT / SIGQUIT fast, SIGTTIN /
//! SIGTTOU add or remove a worker, SIGHUP replaces every worker one by one. Workers ask the
//! kernel for SIGTERM when the master dies (`PR_SET_PDEATHSIG`), so no orphan server is left.
//!
//! Endpoints: `GET /` answers with the worker's pid; `GET /work?ms=N` sleeps N ms (a stand-in
//! for blocking I/O, N <= 10000); `GET /cpu?n=N` burns CPU (N <= 50000000 rounds). Keep-alive
//! is supported; a malformed request gets 400, an oversized head 431, a head that trickles in
//! slower than `--timeout-ms` is dropped (408), and the worker carries on.
//!
//! `cargo run --bin prefork` serves on port 8080 until Ctrl-C; `--demo` runs the scripted
//! scenario against itself (port 0, 3 workers) and ends with a verdict; `--model threads`
//! runs the same server as one process with a pool of threads, for comparison.
//!
//! What to look for in the demo: every worker holds the same socket inode and sleeps in
//! `accept4`; how the kernel spread the connections (count per pid); the cause of death the
//! master logs for a SIGTERM-ed and a SIGKILL-ed worker, and their replacements; the request
//! in flight during the graceful stop that still gets its answer.
//!
//! Caveats: the spread depends on the scheduler and on timing, so the counts change from run
//! to run. A worker serves one connection at a time: with more keep-alive connections than
//! workers the extra clients wait in the kernel's accept queue (the chapter measures it).
//! After `fork` a worker only makes raw system calls and writes into buffers allocated before
//! the fork (no heap, no locks), because the demo's master has client threads when it forks.
//! The HTTP parser and response writer (same rules) are in `src/prefork_http.rs`.

use clap::{Parser, ValueEnum};
use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, getppid, ForkResult, Pid};
use proclab::prefork_http::{
    connect, find, get, linger, param, parse, read_response, respond, worker_of, Conn, Req, Resp, SliceWriter,
};
use proclab::{cleanup, die, flush_stdout, plain, procfacts, say, say_as, Common, Lab, OrDie};
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest request head (request line + headers) a worker accepts; more gets 431.
const REQ_MAX: usize = 8192;
/// The response buffer: status line, headers and a short body.
const OUT_MAX: usize = 1024;
/// A worker blocked in accept (or in recv: accepted sockets inherit the option) wakes at
/// least this often (SO_RCVTIMEO) to look at STOP, its parent and the clock, in case a
/// signal came just before it entered the call.
const TICK_MS: u64 = 500;
/// A worker that dies younger than this counts toward a crash loop.
const YOUNG: Duration = Duration::from_millis(500);
/// Set by SIGTERM in a worker (or by the master of the threads model): finish the request
/// in hand, then stop.
static STOP: AtomicBool = AtomicBool::new(false);

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
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
    /// TCP port on 127.0.0.1; 0 lets the kernel pick a free one (printed) [default: 8080, 0 with --demo]
    #[arg(long, value_parser = clap::value_parser!(u16))]
    port: Option<u16>,
    /// Number of workers [default: 2 x cores + 1, 3 with --demo]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    workers: Option<u32>,
    /// Workers as processes (prefork) or as threads of one process.
    #[arg(long, value_enum, default_value_t = Model::Process)]
    model: Model,
    /// Each worker opens its own listening socket on the port with SO_REUSEPORT, and the
    /// kernel spreads connections over the sockets by a hash of the addresses.
    #[arg(long)]
    reuseport: bool,
    /// A request head (or an idle keep-alive connection) slower than this is dropped, in ms.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    timeout_ms: u64,
    /// Graceful stop (SIGTERM): how long workers get to finish their requests, in ms, before SIGKILL.
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

/// What a worker needs to know. Copied into every worker by fork.
#[derive(Clone, Copy)]
struct Cfg {
    listen_fd: RawFd,
    port: u16,
    reuseport: bool,
    timeout: Duration,
    broken: bool,
}

/// Buffers a worker uses; allocated by the master before fork, so a worker never allocates.
struct Bufs {
    req: Vec<u8>,
    out: Vec<u8>,
}

impl Bufs {
    fn new() -> Bufs {
        Bufs {
            req: vec![0; REQ_MAX],
            out: vec![0; OUT_MAX],
        }
    }
}

fn main() {
    let args = Args::parse();
    if args.demo && args.model == Model::Threads {
        use clap::CommandFactory;
        Args::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--demo runs the process model only",
            )
            .exit(); // exit 2, nothing started
    }
    let mut lab = Lab::start("prefork", &args.common);
    // The master takes its signals one at a time from sigtimedwait in its loop, so they must
    // be blocked before any thread exists (threads inherit the mask).
    let signals = master_signals();
    signals.thread_block().or_die("sigprocmask"); // pending until the loop asks for them
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let workers = args
        .workers
        .unwrap_or(if args.demo { 3 } else { (2 * cores + 1).min(64) }) as usize;
    let port = args.port.unwrap_or(if args.demo { 0 } else { 8080 });
    let (listen_fd, port) = bind_listener(port, args.reuseport, !args.reuseport);
    let cfg = Cfg {
        listen_fd,
        port,
        reuseport: args.reuseport,
        timeout: Duration::from_millis(args.timeout_ms),
        broken: args.broken_workers,
    };
    lab.observe(
        "listening",
        json!({"port": port, "workers": workers, "model": format!("{:?}", args.model).to_lowercase(),
               "reuseport": args.reuseport, "pid": getpid().as_raw()}),
        format_args!(
            "listening on http://127.0.0.1:{port}/ with {workers} {} ({})",
            if args.model == Model::Process {
                "worker processes"
            } else {
                "worker threads"
            },
            if args.reuseport {
                "SO_REUSEPORT: one socket per worker"
            } else {
                "one shared socket"
            }
        ),
    );
    let grace = Duration::from_millis(args.grace_ms);
    if args.model == Model::Threads {
        serve_threads(lab, cfg, workers, &signals, grace);
    }
    let mut master = Master::new(cfg, workers, signals, grace);
    if args.demo {
        // Ctrl-C during the demo: the harness's handler kills and reaps the workers at once.
        SigSet::from(Signal::SIGINT).thread_unblock().or_die("sigprocmask");
        demo(lab, master);
    }
    say!(
        "master: SIGTERM stops gracefully, Ctrl-C fast, SIGTTIN/SIGTTOU add/remove a worker, SIGHUP replaces them all"
    );
    say!(
        "try: curl -s http://127.0.0.1:{port}/   (kill -TTIN {} adds a worker)",
        getpid()
    );
    master.start_all(&mut lab);
    while !master.tick(&mut lab, Duration::from_secs(1)) {}
    master.check_stopped(&mut lab);
    lab.finish(
        "the master forked and supervised its workers and, when told to stop, every worker was reaped and none is left",
    )
}

/// The signals the master handles in its loop.
fn master_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGHUP,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
    ] {
        set.add(s);
    }
    set
}

/// Wait up to `wait` for one of `set` (blocked) to be pending; take it and return it.
fn wait_signal(set: &SigSet, wait: Duration) -> Option<Signal> {
    let ts = libc::timespec {
        tv_sec: wait.as_secs() as libc::time_t,
        tv_nsec: wait.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `set` and `ts` are valid for the call; the siginfo pointer may be null.
    let s = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &ts) }; // sleeps until a signal is pending or the time is up
    Signal::try_from(s).ok()
}

/// The listening socket on 127.0.0.1:`port`; returns it and the port it got (port 0: the
/// kernel picks). With `listen` false (SO_REUSEPORT) the socket only holds the port.
fn bind_listener(port: u16, reuseport: bool, listen: bool) -> (RawFd, u16) {
    // SAFETY: plain socket calls on a descriptor this function owns; every pointer is to a
    // local of the right size.
    unsafe {
        // ANCHOR: bind
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0); // a TCP socket
        if fd < 0 {
            die("socket", Errno::last());
        }
        setsockopt_int(fd, libc::SO_REUSEADDR, 1); // restart at once despite TIME_WAIT
        if reuseport {
            setsockopt_int(fd, libc::SO_REUSEPORT, 1); // others may bind the same port
        }
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_port = port.to_be();
        addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::bind(fd, (&raw const addr).cast(), len) < 0 {
            die("bind", Errno::last()); // EADDRINUSE: try --port 0
        }
        if listen {
            if libc::listen(fd, 1024) < 0 {
                die("listen", Errno::last()); // from now on the kernel completes handshakes itself
            }
            set_accept_tick(fd);
        }
        // ANCHOR_END: bind
        let mut got: libc::sockaddr_in = std::mem::zeroed();
        let mut glen = len;
        libc::getsockname(fd, (&raw mut got).cast(), &mut glen); // which port the kernel gave us
        (fd, u16::from_be(got.sin_port))
    }
}

fn setsockopt_int(fd: RawFd, opt: libc::c_int, v: libc::c_int) {
    // SAFETY: the option value is a local int of the declared size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&raw const v).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        die("setsockopt", Errno::last());
    }
}

/// accept() on this socket, and recv() on the sockets it accepts, give up after TICK_MS
/// (EAGAIN), so a worker looks around.
fn set_accept_tick(fd: RawFd) {
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: (TICK_MS * 1000) as libc::suseconds_t,
    };
    // SAFETY: tv is a local timeval of the declared size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        ) // SO_RCVTIMEO bounds accept() too
    };
}

// ---------------------------------------------------------------------------------------
// The worker: after fork, raw system calls only, into buffers allocated before the fork.
// ---------------------------------------------------------------------------------------

extern "C" fn on_term(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst); // the loop sees it after the request in hand
}

extern "C" fn on_fast(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(0) }
}

fn set_handler(sig: libc::c_int, handler: usize) {
    // SAFETY: the handlers only store an atomic or call _exit; no SA_RESTART, so a blocked
    // accept, poll or sleep returns EINTR and the loop looks at STOP at once.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut());
    }
}

/// A worker process: block in accept() on the shared socket, serve the connection, repeat.
fn worker_main(cfg: &Cfg, master: Pid, bufs: &mut Bufs) -> ! {
    // ANCHOR: worker
    // SAFETY: prctl and getppid are plain system calls.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) }; // the kernel sends SIGTERM when the master dies
    if getppid() != master {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(0) } // the master died before prctl: nobody would tell us
    }
    set_handler(libc::SIGTERM, on_term as *const () as usize); // graceful: finish, then stop
    set_handler(libc::SIGINT, on_fast as *const () as usize); // fast: leave now
    set_handler(libc::SIGQUIT, on_fast as *const () as usize);
    for sig in [libc::SIGHUP, libc::SIGTTIN, libc::SIGTTOU] {
        set_handler(sig, libc::SIG_IGN); // the master's business, not ours
    }
    master_signals().thread_unblock().ok(); // the mask was inherited from the master
                                            // ANCHOR_END: worker
    if cfg.broken {
        say_as!("worker", "broken deploy: exiting with code 70 at start");
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(70) }
    }
    let listen_fd = if cfg.reuseport {
        bind_listener(cfg.port, true, true).0
    } else {
        cfg.listen_fd
    };
    say_as!("worker", "ready, blocking in accept()");
    let (conns, reqs) = accept_loop(listen_fd, cfg, bufs, getpid().as_raw(), Some(master));
    say_as!("worker", "stopping: served {conns} connections, {reqs} requests");
    // SAFETY: _exit is async-signal-safe; a worker never returns into the master's main.
    unsafe { libc::_exit(0) }
}

/// Accept and serve connections until STOP (or the master is gone). Returns (connections,
/// requests) served. Shared by worker processes and worker threads.
fn accept_loop(listen_fd: RawFd, cfg: &Cfg, bufs: &mut Bufs, me: i32, master: Option<Pid>) -> (u64, u64) {
    let (mut conns, mut reqs) = (0, 0);
    // ANCHOR: accept
    while !STOP.load(Ordering::SeqCst) {
        // SAFETY: accept4 with null address pointers; the new descriptor is ours to close.
        let c = unsafe {
            libc::accept4(
                listen_fd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        }; // sleep until the kernel hands us a connection
        if c < 0 {
            if master.is_some_and(|m| getppid() != m) {
                break; // the master is gone (the SIGTERM of PDEATHSIG may already be here too)
            }
            continue; // EINTR (a signal) or EAGAIN (the SO_RCVTIMEO tick): look at STOP
        }
        let served = serve_connection(c, bufs, cfg, me);
        conns += (served > 0) as u64; // a connection closed before its first request does not count
        reqs += served;
        // SAFETY: c is the descriptor accept4 gave us.
        unsafe { libc::close(c) }; // the client sees EOF
    }
    // ANCHOR_END: accept
    (conns, reqs)
}

enum Head {
    /// A complete head of this many bytes is at the start of the buffer.
    Complete(usize),
    /// The client closed, or the connection was idle when we stopped: close quietly.
    Closed,
    TooLarge,
    TimedOut,
}

/// Read until the buffer holds a whole request head (ends with CRLF CRLF), for at most
/// `timeout` in all: a client that trickles its request in slower than that is dropped.
fn read_head(fd: RawFd, buf: &mut [u8], len: &mut usize, timeout: Duration, fresh: bool) -> Head {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(end) = find(&buf[..*len], b"\r\n\r\n") {
            return Head::Complete(end + 4);
        }
        if *len == buf.len() {
            return Head::TooLarge;
        }
        if Instant::now() >= deadline {
            return if *len == 0 { Head::Closed } else { Head::TimedOut };
        }
        // Stopping: an idle keep-alive connection is closed, unless a request already came;
        // a new connection is not idle (its client is sending the request we accepted it for).
        let idle_stop = STOP.load(Ordering::SeqCst) && *len == 0 && !fresh;
        let flags = if idle_stop { libc::MSG_DONTWAIT } else { 0 };
        let room = &mut buf[*len..];
        // SAFETY: the pointer and length describe the free part of the buffer.
        let n = unsafe { libc::recv(fd, room.as_mut_ptr().cast(), room.len(), flags) }; // sleep until bytes come, a signal, or the 500 ms SO_RCVTIMEO the connection inherited from the listening socket
        match n {
            0 => return Head::Closed, // EOF: the client closed
            n if n < 0 => match Errno::last() {
                Errno::EAGAIN if idle_stop => return Head::Closed, // nothing had arrived
                Errno::EAGAIN | Errno::EINTR => continue,          // the tick or a signal: look again
                _ => return Head::Closed,                          // ECONNRESET and the like
            },
            n => *len += n as usize,
        }
    }
}

/// Serve requests on one connection until it closes, asks to close, misbehaves or we stop.
/// Returns how many requests got an answer.
fn serve_connection(fd: RawFd, bufs: &mut Bufs, cfg: &Cfg, me: i32) -> u64 {
    let (mut len, mut served) = (0usize, 0u64);
    loop {
        let end = match read_head(fd, &mut bufs.req, &mut len, cfg.timeout, served == 0) {
            Head::Complete(end) => end,
            Head::Closed => return served,
            Head::TooLarge => {
                respond(fd, &mut bufs.out, 431, b"request head too large\n", Conn::Close, false);
                linger(fd, &mut bufs.req);
                return served;
            }
            Head::TimedOut => {
                respond(fd, &mut bufs.out, 408, b"request too slow\n", Conn::Close, false);
                return served;
            }
        };
        let keep = match parse(&bufs.req[..end]) {
            Ok(req) => {
                let conn = if STOP.load(Ordering::SeqCst) {
                    Conn::Close
                } else {
                    req.conn
                };
                let mut body = [0u8; 128];
                let mut w = SliceWriter::new(&mut body);
                let status = route(&req, me, &mut w);
                let n = w.len;
                respond(fd, &mut bufs.out, status, &body[..n], conn, req.head_only) && conn != Conn::Close
            }
            Err(status) => {
                respond(fd, &mut bufs.out, status, b"bad request\n", Conn::Close, false);
                linger(fd, &mut bufs.req);
                false
            }
        };
        served += 1;
        bufs.req.copy_within(end..len, 0); // a pipelined next request stays in the buffer
        len -= end;
        if !keep {
            return served;
        }
    }
}

/// The endpoints. Writes the body into `w`; returns the status.
fn route(req: &Req, me: i32, w: &mut SliceWriter) -> u16 {
    match req.path {
        b"/" => {
            let _ = writeln!(w, "worker {me}");
            200
        }
        b"/work" => match param(req.query, b"ms").filter(|&ms| ms <= 10_000) {
            Some(ms) => {
                sleep_ms(ms); // stands for a blocking call: a database, a disk, another service
                let _ = writeln!(w, "worker {me} slept {ms} ms");
                200
            }
            None => {
                let _ = writeln!(w, "want /work?ms=N with N <= 10000");
                400
            }
        },
        b"/cpu" => match param(req.query, b"n").filter(|&n| (1..=50_000_000).contains(&n)) {
            Some(n) => {
                let x = burn(n);
                let _ = writeln!(w, "worker {me} burned n={n} ({x:x})");
                200
            }
            None => {
                let _ = writeln!(w, "want /cpu?n=N with 1 <= N <= 50000000");
                400
            }
        },
        _ => {
            let _ = writeln!(w, "not found");
            404
        }
    }
}

/// Sleep `ms` on the monotonic clock, through signals (a SIGTERM must not cut it short).
fn sleep_ms(ms: u64) {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime and clock_nanosleep only read and write the local timespec.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t);
        let ns = t.tv_nsec as u64 + (ms % 1000) * 1_000_000;
        t.tv_sec += (ms / 1000 + ns / 1_000_000_000) as libc::time_t;
        t.tv_nsec = (ns % 1_000_000_000) as libc::c_long;
        while libc::clock_nanosleep(libc::CLOCK_MONOTONIC, libc::TIMER_ABSTIME, &t, std::ptr::null_mut()) == libc::EINTR
        {
        } // until the absolute deadline
    }
}

/// `n` rounds of a multiply-add: CPU work the optimiser cannot remove.
fn burn(n: u64) -> u64 {
    let mut x = n;
    for i in 0..n {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    x
}

// ---------------------------------------------------------------------------------------
// The master (process model).
// ---------------------------------------------------------------------------------------

struct Worker {
    pid: Pid,
    born: Instant,
    /// Told to stop (SIGTTOU, SIGHUP): not replaced when it dies.
    retiring: bool,
}

/// How a worker ended, as waitpid told the master.
#[derive(Clone, Debug)]
struct Death {
    pid: Pid,
    code: Option<i32>,
    signal: Option<Signal>,
}

struct Master {
    cfg: Cfg,
    me: Pid,
    want: usize,
    workers: Vec<Worker>,
    bufs: Bufs,
    signals: SigSet,
    grace: Duration,
    /// Consecutive deaths of young workers (a crash loop).
    streak: u32,
    next_spawn: Instant,
    /// When stopping: the deadline after which the rest get SIGKILL.
    stop_by: Option<Instant>,
    /// SIGHUP: old workers still to be replaced, one at a time.
    rolling: Vec<Pid>,
    deaths: Vec<Death>,
    stragglers: usize,
    /// Why the next workers will be forked (for the log).
    reasons: std::collections::VecDeque<String>,
}

impl Master {
    fn new(cfg: Cfg, want: usize, signals: SigSet, grace: Duration) -> Master {
        Master {
            cfg,
            me: getpid(),
            want,
            workers: Vec::new(),
            bufs: Bufs::new(),
            signals,
            grace,
            streak: 0,
            next_spawn: Instant::now(),
            stop_by: None,
            rolling: Vec::new(),
            deaths: Vec::new(),
            stragglers: 0,
            reasons: Default::default(),
        }
    }

    fn pids(&self) -> Vec<Pid> {
        self.workers.iter().map(|w| w.pid).collect()
    }

    fn active(&self) -> usize {
        self.workers.iter().filter(|w| !w.retiring).count()
    }

    fn start_all(&mut self, lab: &mut Lab) {
        for _ in 0..self.want {
            self.spawn(lab, "start".into());
        }
    }

    // ANCHOR: spawn
    fn spawn(&mut self, lab: &mut Lab, why: String) -> Pid {
        flush_stdout(); // or text still buffered would be printed by the worker too
                        // SAFETY: the child runs worker_main: system calls and say! into buffers allocated
                        // before the fork, no heap, no locks; it never returns (it ends in _exit).
        match unsafe { fork() }.or_die("fork") {
            ForkResult::Child => worker_main(&self.cfg, self.me, &mut self.bufs),
            ForkResult::Parent { child } => {
                cleanup::track(child); // killed and reaped on every way out of the master
                self.workers.push(Worker {
                    pid: child,
                    born: Instant::now(),
                    retiring: false,
                });
                lab.observe(
                    "worker_started",
                    json!({"pid": child.as_raw(), "why": why}),
                    format_args!("master forked worker {child} ({why})"),
                );
                child
            }
        }
    }
    // ANCHOR_END: spawn

    /// One turn of the master's loop: take one signal (waiting at most `wait`), reap the
    /// dead, start the missing. Returns true once stopped with every worker reaped.
    fn tick(&mut self, lab: &mut Lab, wait: Duration) -> bool {
        let now = Instant::now();
        let mut wait = wait;
        if self.stop_by.is_none() && self.active() < self.want {
            wait = wait.min(self.next_spawn.saturating_duration_since(now));
        }
        if let Some(by) = self.stop_by {
            wait = wait.min(by.saturating_duration_since(now));
        }
        // ANCHOR: tick
        match wait_signal(&self.signals, wait) {
            Some(Signal::SIGTERM) => self.stop(lab, Signal::SIGTERM, "SIGTERM: graceful stop"),
            Some(s @ (Signal::SIGINT | Signal::SIGQUIT)) => self.stop(lab, Signal::SIGKILL, &format!("{s}: fast stop")),
            Some(Signal::SIGTTIN) => self.resize(lab, self.want + 1),
            Some(Signal::SIGTTOU) => self.resize(lab, self.want.saturating_sub(1)),
            Some(Signal::SIGHUP) if self.stop_by.is_none() => {
                self.rolling = self.workers.iter().filter(|w| !w.retiring).map(|w| w.pid).collect();
                say!("SIGHUP: replacing {} workers one by one", self.rolling.len());
            }
            _ => {} // SIGCHLD or the timeout: reap below
        }
        // ANCHOR_END: tick
        self.reap(lab);
        if let Some(by) = self.stop_by {
            if self.workers.is_empty() {
                return true;
            }
            if Instant::now() >= by {
                for w in &self.workers {
                    let _ = kill(w.pid, Signal::SIGKILL); // past the deadline: no more waiting
                }
                self.stragglers += self.workers.len();
                self.stop_by = Some(Instant::now() + Duration::from_secs(5));
            }
            return false;
        }
        self.roll(lab);
        while self.active() < self.want && Instant::now() >= self.next_spawn {
            let why = self.reasons.pop_front().unwrap_or_else(|| "replacement".into());
            self.spawn(lab, why);
        }
        false
    }

    /// Reap every dead worker: one SIGCHLD may stand for several deaths (signals of one kind
    /// do not queue), so call waitpid(-1, WNOHANG) until it says nobody else is dead.
    fn reap(&mut self, lab: &mut Lab) {
        loop {
            // ANCHOR: reap
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return, // nobody else is dead
                Ok(s) => s,
                Err(e) => die("waitpid", e),
            };
            let Some(pid) = status.pid() else { continue };
            cleanup::forget(pid); // reaped: the pid may be reused, never kill it again
            let Some(i) = self.workers.iter().position(|w| w.pid == pid) else {
                continue;
            };
            let w = self.workers.remove(i);
            let (code, signal, cause) = match status {
                WaitStatus::Exited(_, c) => (Some(c), None, format!("exited with code {c}")),
                WaitStatus::Signaled(_, s, core) => (
                    None,
                    Some(s),
                    format!("killed by {s}{}", if core { " (core dumped)" } else { "" }),
                ),
                other => (None, None, format!("{other:?}")),
            };
            // ANCHOR_END: reap
            // ANCHOR: backoff
            let age = w.born.elapsed();
            let replace = !w.retiring && self.stop_by.is_none();
            // Young deaths in a row are a crash loop: wait 100 ms, 200 ms, ... up to 5 s.
            self.streak = if age < YOUNG { self.streak + 1 } else { 0 };
            let delay = match self.streak {
                0 | 1 => Duration::ZERO,
                k => Duration::from_millis(100 << (k - 2).min(6)).min(Duration::from_secs(5)),
            };
            if replace {
                self.next_spawn = self.next_spawn.max(Instant::now() + delay);
                self.reasons.push_back(format!("replaces {pid}"));
            }
            // ANCHOR_END: backoff
            let then = match (replace, delay.is_zero()) {
                (false, _) => "not replaced".to_string(),
                (true, true) => "replacing it".to_string(),
                (true, false) => format!("crash loop: replacement in {} ms", delay.as_millis()),
            };
            lab.observe(
                "worker_died",
                json!({"pid": pid.as_raw(), "code": code, "signal": signal.map(|s| s.as_str()),
                       "age_ms": age.as_millis() as u64, "replaced": replace, "delay_ms": delay.as_millis() as u64}),
                format_args!("waitpid: worker {pid} {cause} after {:.1} s; {then}", age.as_secs_f64()),
            );
            self.deaths.push(Death { pid, code, signal });
        }
    }

    /// Stop every worker: SIGTERM (graceful, within the grace time) or SIGKILL (fast).
    fn stop(&mut self, lab: &mut Lab, sig: Signal, why: &str) {
        if self.stop_by.is_some() {
            if sig != Signal::SIGKILL {
                return;
            }
        } else {
            // SAFETY: the master's copy of the listening socket; workers hold their own.
            unsafe { libc::close(self.cfg.listen_fd) }; // when the last worker exits the port closes
        }
        lab.observe(
            "stop",
            json!({"signal": sig.as_str(), "workers": self.workers.len()}),
            format_args!("{why}: {sig} to {} workers", self.workers.len()),
        );
        for w in &self.workers {
            let _ = kill(w.pid, sig);
        }
        let grace = if sig == Signal::SIGKILL {
            Duration::from_secs(5)
        } else {
            self.grace
        };
        self.stop_by = Some(Instant::now() + grace);
    }

    /// SIGTTIN / SIGTTOU: one worker more or fewer (at least 1, at most 64).
    fn resize(&mut self, lab: &mut Lab, want: usize) {
        if self.stop_by.is_some() || !(1..=64).contains(&want) {
            return;
        }
        if want > self.want {
            self.reasons.push_back("SIGTTIN: one more".into());
        }
        self.want = want;
        lab.observe(
            "resize",
            json!({"want": want}),
            format_args!("now {want} workers wanted"),
        );
        if self.active() > want {
            if let Some(w) = self.workers.iter_mut().rev().find(|w| !w.retiring) {
                w.retiring = true;
                let _ = kill(w.pid, Signal::SIGTERM); // finishes its request, then exits
            }
        }
    }

    /// SIGHUP: fork the new worker first, then retire one old one; the next only once it
    /// has exited. The listening socket never closes, so no connection is refused.
    fn roll(&mut self, lab: &mut Lab) {
        if self.workers.iter().any(|w| w.retiring) {
            return; // the previous old worker is still finishing
        }
        while let Some(old) = self.rolling.pop() {
            if let Some(i) = self.workers.iter().position(|w| w.pid == old) {
                self.spawn(lab, format!("SIGHUP: replaces {old}"));
                self.workers[i].retiring = true;
                let _ = kill(old, Signal::SIGTERM);
                return;
            }
        }
    }

    /// After a stop: every worker reaped and none alive.
    fn check_stopped(&mut self, lab: &mut Lab) -> bool {
        let alive: Vec<i32> = self
            .deaths
            .iter()
            .map(|d| d.pid.as_raw())
            .filter(|&p| procfacts::exists(p))
            .collect();
        lab.check(
            "shutdown_clean",
            self.workers.is_empty() && alive.is_empty(),
            format_args!(
                "{} workers reaped by the master, {} left alive",
                self.deaths.len(),
                alive.len() + self.workers.len()
            ),
        )
    }
}

// ---------------------------------------------------------------------------------------
// The threads model: the same accept loop in N threads of one process.
// ---------------------------------------------------------------------------------------

fn serve_threads(mut lab: Lab, cfg: Cfg, n: usize, signals: &SigSet, grace: Duration) -> ! {
    let threads: Vec<_> = (0..n)
        .map(|_| {
            std::thread::spawn(move || {
                let mut bufs = Bufs::new();
                let fd = if cfg.reuseport {
                    bind_listener(cfg.port, true, true).0
                } else {
                    cfg.listen_fd
                };
                // SAFETY: gettid has no preconditions.
                let tid = unsafe { libc::gettid() };
                say_as!("thread", "{tid} ready, blocking in accept()");
                let (c, r) = accept_loop(fd, &cfg, &mut bufs, tid, None);
                say_as!("thread", "{tid} stopping: served {c} connections, {r} requests");
            })
        })
        .collect();
    say!(
        "serving with {n} threads in process {}; SIGTERM stops gracefully, Ctrl-C fast",
        getpid()
    );
    let graceful = loop {
        match wait_signal(signals, Duration::from_secs(1)) {
            Some(Signal::SIGTERM) => break true,
            Some(Signal::SIGINT | Signal::SIGQUIT) => break false,
            Some(s @ (Signal::SIGTTIN | Signal::SIGTTOU | Signal::SIGHUP)) => say!("{s} is for the process model only"),
            _ => {}
        }
    };
    STOP.store(true, Ordering::SeqCst); // threads notice within one accept tick
    let deadline = Instant::now() + if graceful { grace } else { Duration::ZERO };
    while Instant::now() < deadline && !threads.iter().all(|t| t.is_finished()) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let done = threads.iter().filter(|t| t.is_finished()).count();
    lab.observe(
        "stop",
        json!({"graceful": graceful, "threads": n, "finished": done}),
        format_args!(
            "{} stop: {done} of {n} threads finished their requests",
            if graceful { "graceful" } else { "fast" }
        ),
    );
    lab.check(
        "shutdown_clean",
        !graceful || done == n,
        format_args!("{done} of {n} threads finished before the process exits"),
    );
    lab.finish("the threads served until told to stop") // process exit ends any thread left
}

// ---------------------------------------------------------------------------------------
// The demo: a bounded client of its own drives the scenario of the chapter.
// ---------------------------------------------------------------------------------------

/// True if `pid` is blocked in system call `nr` (/proc/PID/syscall), or, where that file
/// is not readable (it needs ptrace rights), if it sleeps in a kernel function whose name
/// contains `wchan` (/proc/PID/wchan).
fn blocked_in(pid: Pid, nr: i64, wchan: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/syscall")) {
        Ok(s) => s.split_whitespace().next().and_then(|n| n.parse().ok()) == Some(nr),
        Err(_) => procfacts::wchan(pid.as_raw()).is_some_and(|w| w.contains(wchan)),
    }
}

/// The inode of the socket `fd` (`socket:[INODE]` in /proc/PID/fd).
fn socket_inode(pid: Pid, fd: RawFd) -> Option<String> {
    let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    Some(link.display().to_string())
}

/// A stream of requests from a background thread until `stop`: (start, result) of each.
type Log = Arc<Mutex<Vec<(Instant, Resp)>>>;

fn load(port: u16, stop: Arc<AtomicBool>, done: Arc<AtomicUsize>, log: Log) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) && done.load(Ordering::SeqCst) < 20_000 {
            let t = Instant::now();
            let r = get(port, "/");
            log.lock().expect("log").push((t, r));
            done.fetch_add(1, Ordering::SeqCst);
        }
    })
}

fn wait_count(counter: &AtomicUsize, at_least: usize) {
    procfacts::poll_until(Duration::from_secs(10), || {
        (counter.load(Ordering::SeqCst) >= at_least).then_some(())
    });
}

fn demo(mut lab: Lab, mut m: Master) -> ! {
    let port = m.cfg.port;
    let me = getpid();

    lab.section("1. The master binds one socket and forks the workers");
    m.start_all(&mut lab);
    lab.show_tree(me);
    // ANCHOR: demo_start
    let master_sock = socket_inode(me, m.cfg.listen_fd).unwrap_or_default();
    let (mut shared, mut in_accept) = (0, 0);
    for pid in m.pids() {
        let sock = socket_inode(pid, m.cfg.listen_fd).unwrap_or_default(); // the fd number survives fork
        let accepting = procfacts::poll_until(Duration::from_secs(5), || {
            blocked_in(pid, libc::SYS_accept4, "accept").then_some(())
        })
        .is_some();
        lab.observe(
            "worker_socket",
            json!({"pid": pid.as_raw(), "fd": m.cfg.listen_fd, "socket": sock, "in_accept4": accepting}),
            format_args!(
                "worker {pid}: fd {} -> {sock}; /proc/{pid}/syscall: {}",
                m.cfg.listen_fd,
                if accepting {
                    "blocked in accept4"
                } else {
                    "not seen in accept4"
                }
            ),
        );
        shared += (sock == master_sock && sock.starts_with("socket:")) as usize;
        in_accept += accepting as usize;
    }
    // ANCHOR_END: demo_start
    let n = m.workers.len();
    lab.check(
        "one_socket_all_in_accept",
        shared == n && in_accept == n,
        format_args!("{shared} of {n} workers hold the master's socket ({master_sock}) and {in_accept} of {n} sleep in accept4 on it"),
    );

    lab.section("2. How the kernel spreads connections over the workers");
    // ANCHOR: spread
    let clients: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || (0..20).map(|_| get(port, "/")).collect::<Vec<_>>()))
        .collect();
    let mut per_worker: BTreeMap<i32, usize> = BTreeMap::new();
    let mut failed = 0;
    for c in clients {
        for r in c.join().expect("client thread") {
            match r.ok().filter(|(s, _)| *s == 200).and_then(|(_, b)| worker_of(&b)) {
                Some(pid) => *per_worker.entry(pid).or_default() += 1,
                None => failed += 1,
            }
        }
    }
    // ANCHOR_END: spread
    let total: usize = per_worker.values().sum();
    let rows: Vec<Vec<String>> = per_worker
        .iter()
        .map(|(pid, k)| {
            vec![
                pid.to_string(),
                k.to_string(),
                format!("{:.0}%", 100.0 * *k as f64 / total.max(1) as f64),
            ]
        })
        .collect();
    plain!("  3 clients x 20 requests, one connection each:");
    lab.table("spread", &["worker", "requests", "share"], &rows);
    lab.check(
        "spread",
        per_worker.len() > 1 && failed == 0,
        format_args!(
            "{total} requests answered by {} different workers, {failed} failed",
            per_worker.len()
        ),
    );
    let mut ka = Vec::new();
    if let Ok(mut s) = connect(port) {
        for _ in 0..10 {
            if write!(s, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
                break;
            }
            match read_response(&mut s) {
                Ok((200, b)) => ka.push(worker_of(&b).unwrap_or(0)),
                _ => break,
            }
        }
    }
    ka.dedup();
    lab.observe(
        "keepalive",
        json!({"workers": ka}),
        format_args!("10 requests on one keep-alive connection were served by worker(s) {ka:?}"),
    );
    lab.check(
        "keepalive_one_worker",
        ka.len() == 1 && ka[0] > 0,
        "a keep-alive connection belongs to the worker that accepted it: 10 of 10 requests, same pid",
    );

    lab.section("3. Kill one worker with SIGTERM and one with SIGKILL, under load");
    let (stop, done, log): (Arc<AtomicBool>, Arc<AtomicUsize>, Log) = Default::default();
    let loader = load(port, stop.clone(), done.clone(), log.clone());
    wait_count(&done, 20);
    // Workers younger than YOUNG that die count as a crash loop; these are not young.
    procfacts::poll_until(Duration::from_secs(5), || {
        m.workers.iter().all(|w| w.born.elapsed() > YOUNG).then_some(())
    });
    let old = m.pids();
    // ANCHOR: kill
    let (gentle, brutal) = (old[0], old[1]);
    kill(gentle, Signal::SIGTERM).or_die("kill"); // asks it to finish its request and exit
    kill(brutal, Signal::SIGKILL).or_die("kill"); // no say in the matter
    let killed_at = Instant::now();
    let deadline = killed_at + Duration::from_secs(10);
    while m.deaths.len() < 2 && Instant::now() < deadline {
        m.tick(&mut lab, Duration::from_millis(100)); // SIGCHLD -> waitpid -> fork a replacement
    }
    let dead_at = Instant::now(); // kill() returning did not mean dead; waitpid's report does
    while m.active() < m.want && m.stop_by.is_none() && Instant::now() < deadline {
        m.tick(&mut lab, Duration::from_millis(100)); // a crash-loop back-off may delay one
    }
    // ANCHOR_END: kill
    let at_death = done.load(Ordering::SeqCst);
    wait_count(&done, at_death + 30);
    stop.store(true, Ordering::SeqCst);
    loader.join().expect("load thread");
    lab.show_tree(me);
    let log = std::mem::take(&mut *log.lock().expect("log"));
    let ok = |r: &Resp| matches!(r, Ok((200, _)));
    let failed_in = |from: Instant, to: Instant| {
        let span: Vec<_> = log.iter().filter(|(t, _)| *t >= from && *t < to).collect();
        (span.iter().filter(|(_, r)| !ok(r)).count(), span.len())
    };
    let (failed_before, _) = failed_in(log[0].0, killed_at);
    let (failed_window, window) = failed_in(killed_at, dead_at);
    let after: Vec<&(Instant, Resp)> = log.iter().filter(|(t, _)| *t >= dead_at).collect();
    let after_ok = after.iter().filter(|(_, r)| ok(r)).count();
    let new: Vec<Pid> = m.pids().into_iter().filter(|p| !old.contains(p)).collect();
    let new_served = after
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().and_then(|(_, b)| worker_of(b)))
        .filter(|p| new.iter().any(|n| n.as_raw() == *p))
        .count();
    let first_error = log.iter().find_map(|(_, r)| r.as_ref().err().cloned());
    lab.observe(
        "under_load",
        json!({"requests": log.len(), "failed_before_kill": failed_before, "in_window": window,
               "failed_in_window": failed_window, "after_death": after.len(), "after_death_ok": after_ok,
               "new_workers": new.iter().map(|p| p.as_raw()).collect::<Vec<_>>(), "served_by_new": new_served,
               "first_error": first_error}),
        format_args!(
            "{} requests: {failed_before} failed of those started before the kills, {failed_window} of the {window} started between the kills and waitpid's report, and {after_ok} of {} started after it succeeded ({new_served} served by the new workers)",
            log.len(),
            after.len()
        ),
    );
    let died = |pid: Pid| m.deaths.iter().find(|d| d.pid == pid).cloned();
    let gentle_ok = died(gentle).is_some_and(|d| d.code == Some(0));
    let brutal_ok = died(brutal).is_some_and(|d| d.signal == Some(Signal::SIGKILL));
    let alive = m.pids().iter().filter(|p| procfacts::exists(p.as_raw())).count();
    lab.check(
        "replaced",
        gentle_ok && brutal_ok && new.len() == 2 && alive == m.want,
        format_args!(
            "waitpid reported the SIGTERM-ed worker exiting 0 and the other killed by SIGKILL; {} replacements forked, {alive} workers alive",
            new.len()
        ),
    );
    lab.check(
        "no_failure_once_reaped",
        !after.is_empty() && after_ok == after.len(),
        format_args!(
            "{after_ok} of {} requests started after waitpid reported both deaths succeeded",
            after.len()
        ),
    );

    if m.stop_by.is_some() {
        // Someone else sent SIGTERM or SIGQUIT: stop here, honestly.
        while !m.tick(&mut lab, Duration::from_millis(200)) {}
        m.check_stopped(&mut lab);
        lab.check("not_interrupted", m.stop_by.is_none(), "the demo ran to its end");
        lab.finish("the demo was stopped by a signal before its end");
    }

    lab.section("4. Graceful stop: SIGTERM to the master with a request in flight");
    // ANCHOR: graceful
    let in_flight = std::thread::spawn(move || get(port, "/work?ms=600"));
    let sleeper = procfacts::poll_until(Duration::from_secs(10), || {
        m.pids()
            .into_iter()
            .find(|&p| blocked_in(p, libc::SYS_clock_nanosleep, "nanosleep"))
    });
    lab.observe(
        "in_flight",
        json!({"pid": sleeper.map(|p| p.as_raw())}),
        match sleeper {
            Some(p) => format!("worker {p} is in clock_nanosleep (/proc/{p}/syscall): the request is in flight"),
            None => "no worker was seen serving /work".into(),
        },
    );
    let stop_at = Instant::now();
    kill(me, Signal::SIGTERM).or_die("kill"); // the master signals itself; its loop takes it
    let before = m.deaths.len();
    while !m.tick(&mut lab, Duration::from_millis(200)) {} // bounded by --grace-ms, then SIGKILL
    let stopped_in = stop_at.elapsed();
    let answer = in_flight.join().expect("in-flight thread");
    // ANCHOR_END: graceful
    lab.observe(
        "in_flight_answer",
        json!({"ok": matches!(answer, Ok((200, _))), "answer": format!("{answer:?}"), "stop_ms": stopped_in.as_millis() as u64}),
        format_args!("the in-flight request got {answer:?}; all workers gone {:.2} s after SIGTERM", stopped_in.as_secs_f64()),
    );
    lab.check(
        "in_flight_finished",
        sleeper.is_some() && matches!(&answer, Ok((200, b)) if b.contains("slept 600 ms")),
        "the request in flight when SIGTERM came was answered 200 before its worker exited",
    );
    let last = m.deaths[before..].to_vec();
    let clean = last.iter().filter(|d| d.code == Some(0)).count();
    let refused = matches!(connect(port), Err(e) if e.contains("refused"));
    lab.observe(
        "after_stop",
        json!({"exited_0": clean, "workers": last.len(), "stragglers": m.stragglers, "refused": refused}),
        format_args!(
            "{clean} of {} workers exited with code 0, {} needed SIGKILL; a new connection is {}",
            last.len(),
            m.stragglers,
            if refused {
                "refused (the port is closed)"
            } else {
                "NOT refused"
            }
        ),
    );
    let clean_stop = m.check_stopped(&mut lab);
    lab.check(
        "graceful_exit",
        clean_stop && clean == last.len() && m.stragglers == 0 && refused,
        "every worker exited on its own with code 0 within the grace time, and the port is closed",
    );
    lab.finish("the kernel spreads connections over workers blocked in accept on one socket; the master sees each death through SIGCHLD and waitpid and replaces the worker, so requests keep succeeding; SIGTERM stops them without losing the request in flight")
}
