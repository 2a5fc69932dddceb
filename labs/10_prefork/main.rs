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
//! Serving a connection (same rules) is in `labs/10_prefork/serve.rs`, the HTTP parser in
//! `src/prefork_http.rs`; the flags, the wording of the observations, the demo's client, the
//! threads model and SIGTTIN / SIGTTOU / SIGHUP are in `labs/10_prefork/` too.

use crate::http::{connect, get, worker_of};
use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpid, getppid, ForkResult, Pid};
use proclab::{
    check, cleanup, die, flush_stdout, procfacts, say, say_as, Deadline, Lab,
    OrDie, Status,
};
use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod cli;
mod client;
mod http;
mod master;
mod report;
mod serve;
mod spread;
mod threads;

use cli::{Args, Model};
use client::{
    accept_fd, blocked_in, keepalive_workers, ok, socket_inode, started,
    waiting_on_socket, Load,
};
use master::{lab_now, Death, Master, Worker};
use serve::{serve_connection, set_accept_tick, setsockopt_int, Bufs};

/// A worker blocked in accept (or in recv: accepted sockets inherit the option) wakes at
/// least this often (SO_RCVTIMEO) to look at STOP, its parent and the clock, in case a
/// signal came just before it entered the call.
const TICK_MS: u64 = 500;
/// A worker that dies younger than this counts toward a crash loop.
const YOUNG: Duration = Duration::from_millis(500);
/// Set by SIGTERM in a worker (or by the master of the threads model): finish the request
/// in hand, then stop.
static STOP: AtomicBool = AtomicBool::new(false);

/// What a worker needs to know. Copied into every worker by fork.
#[derive(Clone, Copy)]
struct Cfg {
    listen_fd: RawFd,
    port: u16,
    reuseport: bool,
    timeout: Duration,
    broken: bool,
    /// Tests only: SIGTERM makes a worker leave at once, like SIGINT (no graceful stop).
    sigterm_fast: bool,
    /// Tests only: a worker waits in epoll_wait (EPOLLEXCLUSIVE) before accept, so the
    /// kernel wakes the first idle worker that registered, not the one waiting longest.
    epoll_exclusive: bool,
    /// Tests only: every answer closes its connection (no keep-alive).
    close_each: bool,
}

impl Cfg {
    /// The socket a worker accepts on: the shared one, or with SO_REUSEPORT one of its own.
    fn listener(&self) -> RawFd {
        if self.reuseport {
            bind_listener(self.port, true, true).0
        } else {
            self.listen_fd
        }
    }
}

fn main() {
    let args = Args::get(); // a bad command line exits 2 here, before anything starts
    let claim = if args.demo {
        "the kernel spreads connections over workers blocked in accept on one socket; the master sees each death through SIGCHLD and waitpid and replaces the worker, so requests keep succeeding; SIGTERM stops them without losing the request in flight"
    } else if args.model == Model::Threads {
        "the threads served until told to stop"
    } else {
        "the master forked and supervised its workers and, when told to stop, every worker was reaped and none is left"
    };
    let mut lab = Lab::start("prefork", claim, &args.common);
    // The master takes its signals one at a time from sigtimedwait in its loop, so they must
    // be blocked before any thread exists (threads inherit the mask). In the demo SIGINT and
    // SIGTERM stay with the harness (clean up, die of the signal); the demo's own SIGTERM
    // to the master (section 4) is blocked and taken by the loop only then.
    let signals = master_signals(args.demo);
    signals.thread_block().or_die("sigprocmask"); // pending until the loop asks for them
    let mut interrupts = SigSet::empty();
    if args.demo {
        interrupts.add(Signal::SIGINT);
        interrupts.add(Signal::SIGTERM);
    }
    let workers = args.workers();
    // Tests only: in the demo each worker opens a socket of its own (SO_REUSEPORT).
    let reuseport =
        args.reuseport || (args.demo && proclab::test_removes("own_socket"));
    let (listen_fd, port) = bind_listener(args.port(), reuseport, !reuseport);
    let cfg = Cfg {
        listen_fd,
        port,
        reuseport,
        timeout: Duration::from_millis(args.timeout_ms),
        broken: args.broken_workers,
        sigterm_fast: proclab::test_removes("sigterm_fast"),
        epoll_exclusive: proclab::test_removes("epoll_exclusive"),
        close_each: proclab::test_removes("close_each"),
    };
    report::listening(&mut lab, &args, port, workers, reuseport);
    let grace = Duration::from_millis(args.grace_ms);
    if args.model == Model::Threads {
        let (graceful, done) =
            threads::serve(&mut lab, cfg, workers, &signals, grace);
        lab.check(
            "shutdown_clean",
            !graceful || done == workers,
            format_args!(
                "{done} of {workers} threads finished before the process exits"
            ),
        );
        lab.finish() // process exit ends any thread left
    }
    let mut master = Master::new(cfg, workers, signals, interrupts, grace);
    if args.demo {
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
    lab.finish()
}

/// The signals the master handles in its loop (the demo leaves SIGINT and SIGTERM to the
/// harness).
fn master_signals(demo: bool) -> SigSet {
    use Signal::*;
    let mut set: SigSet =
        [SIGCHLD, SIGQUIT, SIGHUP, SIGTTIN, SIGTTOU].into_iter().collect();
    if !demo {
        set.add(SIGTERM);
        set.add(SIGINT);
    }
    set
}

/// The signals every worker unblocks (whatever its master blocked).
fn all_master_signals() -> SigSet {
    master_signals(false)
}

/// Wait up to `wait` for one of `set` (blocked) to be pending; take it and return it with
/// the pid of its sender.
fn wait_signal(set: &SigSet, wait: Duration) -> Option<(Signal, i32)> {
    let ts = libc::timespec {
        tv_sec: wait.as_secs() as libc::time_t,
        tv_nsec: wait.subsec_nanos() as libc::c_long,
    };
    // SAFETY: an all-zero siginfo_t is a valid value to be overwritten.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // Sleeps until a signal of the set is pending or the time is up.
    // SAFETY: `set`, `info` and `ts` are valid for the call.
    let s = unsafe { libc::sigtimedwait(set.as_ref(), &mut info, &ts) };
    // SAFETY: for a signal sent by kill(2) the kernel filled in si_pid.
    let from = unsafe { info.si_pid() };
    Signal::try_from(s).ok().map(|sig| (sig, from))
}

/// The listening socket on 127.0.0.1:`port`; returns it and the port it got (port 0: the
/// kernel picks). With `listen` false (SO_REUSEPORT) the socket only holds the port.
fn bind_listener(port: u16, reuseport: bool, listen: bool) -> (RawFd, u16) {
    // SAFETY: plain socket calls on a descriptor this function owns; every pointer is to a
    // local of the right size.
    unsafe {
        // ANCHOR: bind
        let fd =
            libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0); // a TCP socket
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
    let on_sigterm = if cfg.sigterm_fast { on_fast } else { on_term }; // tests only
    set_handler(libc::SIGTERM, on_sigterm as *const () as usize); // graceful: finish, then stop
    set_handler(libc::SIGINT, on_fast as *const () as usize); // fast: leave now
    set_handler(libc::SIGQUIT, on_fast as *const () as usize);
    for sig in [libc::SIGHUP, libc::SIGTTIN, libc::SIGTTOU] {
        set_handler(sig, libc::SIG_IGN); // the master's business, not ours
    }
    all_master_signals().thread_unblock().ok(); // the mask was inherited from the master
                                                // ANCHOR_END: worker
    if cfg.broken {
        say_as!("worker", "broken deploy: exiting with code 70 at start");
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(70) }
    }
    let listen_fd = cfg.listener();
    say_as!("worker", "ready, blocking in accept()");
    let (conns, reqs) =
        accept_loop(listen_fd, cfg, bufs, getpid().as_raw(), Some(master));
    say_as!("worker", "stopping: served {conns} connections, {reqs} requests");
    // SAFETY: _exit is async-signal-safe; a worker never returns into the master's main.
    unsafe { libc::_exit(0) }
}

/// Accept and serve connections until STOP (or the master is gone). Returns (connections,
/// requests) served. Shared by worker processes and worker threads.
fn accept_loop(
    listen_fd: RawFd,
    cfg: &Cfg,
    bufs: &mut Bufs,
    me: i32,
    master: Option<Pid>,
) -> (u64, u64) {
    let (mut conns, mut reqs) = (0, 0);
    let ep = if cfg.epoll_exclusive { exclusive_epoll(listen_fd) } else { -1 };
    // ANCHOR: accept
    while !STOP.load(Ordering::SeqCst) {
        let c = if ep < 0 || epoll_ready(ep) {
            // SAFETY: accept4 with null address pointers; the descriptor is ours to close.
            unsafe {
                libc::accept4(
                    listen_fd,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC,
                )
            } // sleep until the kernel hands us a connection
        } else {
            -1
        };
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

/// Tests only (`epoll_exclusive`): an epoll instance of the worker's own that watches the
/// listening socket with EPOLLEXCLUSIVE, so a connection wakes one worker waiting in it.
fn exclusive_epoll(listen_fd: RawFd) -> RawFd {
    let events = (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32;
    let mut ev = libc::epoll_event { events, u64: 0 };
    // SAFETY: plain system calls on descriptors of this process; `ev` is a live event.
    unsafe {
        let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
        libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, listen_fd, &mut ev);
        ep
    }
}

/// Wait (at most one tick) in epoll_pwait until the listening socket has a connection.
fn epoll_ready(ep: RawFd) -> bool {
    let mut ev = libc::epoll_event { events: 0, u64: 0 };
    let null = std::ptr::null();
    // SAFETY: one live event to fill in; no signal mask.
    unsafe { libc::epoll_pwait(ep, &mut ev, 1, TICK_MS as i32, null) > 0 }
}

// ---------------------------------------------------------------------------------------
// The master (process model). Its state, SIGTTIN/TTOU and SIGHUP: in 10_prefork/master.rs.
// ---------------------------------------------------------------------------------------

impl Master {
    // ANCHOR: spawn
    fn spawn(&mut self, lab: &mut Lab, why: String) -> Pid {
        flush_stdout(); // or text still buffered would be printed by the worker too

        // SAFETY: the child runs worker_main: system calls and say! into buffers allocated
        // before the fork, no heap, no locks; it never returns (it ends in _exit).
        match unsafe { cleanup::fork_tracked() } {
            ForkResult::Child => worker_main(&self.cfg, self.me, &mut self.bufs),
            ForkResult::Parent { child } => {
                // fork_tracked recorded the child: killed and reaped on every way out
                self.workers.push(Worker {
                    pid: child,
                    born: lab_now(),
                    retiring: false,
                });
                report::worker_started(lab, child, &why);
                child
            }
        }
    }
    // ANCHOR_END: spawn

    /// One turn of the master's loop: take one signal (waiting at most `wait`), reap the
    /// dead, start the missing. Returns true once stopped with every worker reaped.
    fn tick(&mut self, lab: &mut Lab, wait: Duration) -> bool {
        let now = lab_now();
        let mut wait = wait;
        if self.stop_by.is_none() && self.active() < self.want {
            wait = wait.min(self.next_spawn.saturating_sub(now));
        }
        if let Some(by) = self.stop_by {
            wait = wait.min(by.saturating_sub(now));
        }
        let taken = wait_signal(&self.signals, wait);
        if let Some((s, from)) = taken {
            if self.interrupts.contains(s) && from != self.me.as_raw() {
                hand_back(s); // the demo was interrupted: clean up and die of it
            }
        }
        // ANCHOR: tick
        match taken.map(|(s, _)| s) {
            Some(Signal::SIGTERM) => {
                self.stop(lab, Signal::SIGTERM, "SIGTERM: graceful stop")
            }
            Some(s @ (Signal::SIGINT | Signal::SIGQUIT)) => {
                self.stop(lab, Signal::SIGKILL, &format!("{s}: fast stop"))
            }
            Some(Signal::SIGTTIN) => self.resize(lab, self.want + 1),
            Some(Signal::SIGTTOU) => self.resize(lab, self.want.saturating_sub(1)),
            Some(Signal::SIGHUP) if self.stop_by.is_none() => {
                self.rolling = self
                    .workers
                    .iter()
                    .filter(|w| !w.retiring)
                    .map(|w| w.pid)
                    .collect();
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
            if lab_now() >= by {
                for w in &self.workers {
                    let _ = kill(w.pid, Signal::SIGKILL); // past the deadline: no more waiting
                }
                self.stragglers += self.workers.len();
                self.stop_by = Some(lab_now() + Duration::from_secs(5));
            }
            return false;
        }
        self.roll(lab);
        while !self.no_replacement
            && self.active() < self.want
            && lab_now() >= self.next_spawn
        {
            let why =
                self.reasons.pop_front().unwrap_or_else(|| "replacement".into());
            self.spawn(lab, why);
        }
        false
    }

    /// Reap every dead worker: one SIGCHLD may stand for several deaths (signals of one kind
    /// do not queue), so call waitpid(-1, WNOHANG) until it says nobody else is dead.
    fn reap(&mut self, lab: &mut Lab) {
        loop {
            // ANCHOR: reap
            let status =
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
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
            let status = Status::from(status); // "exited, status 0", "killed by SIGKILL"
                                               // ANCHOR_END: reap
                                               // ANCHOR: backoff
            let age = lab_now().saturating_sub(w.born);
            let replace =
                !w.retiring && self.stop_by.is_none() && !self.no_replacement;
            // Young deaths in a row are a crash loop: wait 100 ms, 200 ms, ... up to 5 s.
            self.streak = if age < YOUNG { self.streak + 1 } else { 0 };
            let delay = match self.streak {
                0 | 1 => Duration::ZERO,
                k => Duration::from_millis(100 << (k - 2).min(6))
                    .min(Duration::from_secs(5)),
            };
            if replace {
                self.next_spawn = self.next_spawn.max(lab_now() + delay);
                self.reasons.push_back(format!("replaces {pid}"));
            }
            // ANCHOR_END: backoff
            let death = Death { pid, status };
            report::worker_died(lab, &death, age, replace, delay);
            self.deaths.push(death);
        }
    }

    /// Stop every worker: SIGTERM (graceful, within the grace time) or SIGKILL (fast).
    fn stop(&mut self, lab: &mut Lab, sig: Signal, why: &str) {
        if self.stop_by.is_some() {
            if sig != Signal::SIGKILL {
                return;
            }
        } else {
            // When the last worker exits the port closes: the workers hold their own copies.
            // SAFETY: the master's copy of the listening socket, not used again.
            unsafe { libc::close(self.cfg.listen_fd) };
        }
        for w in &self.workers {
            let _ = kill(w.pid, sig);
        }
        let grace = if sig == Signal::SIGKILL {
            Duration::from_secs(5)
        } else {
            self.grace
        };
        self.stop_by = Some(lab_now() + grace);
        report::stop(lab, sig, why, self.workers.len()); // after the signals: a pause here delays no worker
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

/// A signal that interrupts the demo, taken by sigtimedwait: unblock it and raise it, so
/// the harness's handler kills and reaps the workers and the lab dies of that signal.
fn hand_back(sig: Signal) -> ! {
    let _ = SigSet::from(sig).thread_unblock();
    let _ = nix::sys::signal::raise(sig); // the handler runs now and does not return
    unreachable!("the harness's handler for {sig} ends the process")
}

// ---------------------------------------------------------------------------------------
// The demo: a bounded client of its own drives the scenario of the chapter.
// ---------------------------------------------------------------------------------------

/// The demo: a bounded client of its own drives the scenario of the chapter.
fn demo(mut lab: Lab, mut m: Master) -> ! {
    let (port, fd, me) = (m.cfg.port, m.cfg.listen_fd, getpid());

    lab.section("1. The master binds one socket and forks the workers");
    m.start_all(&mut lab);
    lab.show_tree(me);
    // ANCHOR: demo_start
    let master_sock = socket_inode(me, fd).unwrap_or_default();
    let pids = m.pids();
    procfacts::poll_until(Duration::from_secs(5), || {
        pids.iter().all(|&p| accept_fd(p).is_some()).then_some(())
    });
    let (mut shared, mut in_accept) = (0, 0);
    for &pid in &pids {
        let on = accept_fd(pid); // the descriptor it sleeps in accept4 on
        let sock = on.and_then(|f| socket_inode(pid, f)).unwrap_or_default();
        report::worker_socket(&mut lab, pid, on, &sock);
        shared += (sock == master_sock && sock.starts_with("socket:")) as usize;
        in_accept += on.is_some() as usize;
    }
    // ANCHOR_END: demo_start
    let n = m.workers.len();
    lab.check(
        "one_socket_all_in_accept",
        shared == n && in_accept == n,
        format_args!("{shared} of {n} workers hold the master's socket ({master_sock}) and {in_accept} of {n} sleep in accept4 on it"),
    );

    lab.section("2. How the kernel spreads connections over the workers");
    let pids = m.pids();
    // ANCHOR: spread
    // One connection at a time, each made once every worker sleeps in accept4.
    let mut order = Vec::new();
    for _ in 0..10 * pids.len() {
        let all_idle = procfacts::poll_until(Duration::from_secs(5), || {
            pids.iter().all(|&p| waiting_on_socket(p)).then_some(())
        });
        if all_idle.is_none() {
            lab.not_observed(
                "spread",
                "a worker did not go back to accept4 in 5 s",
            );
        }
        match get(port, "/") {
            Ok((200, body)) => order.push(worker_of(&body).unwrap_or(0)),
            other => {
                lab.not_observed("spread", format_args!("no answer: {other:?}"))
            }
        }
    }
    // ANCHOR_END: spread
    spread::judge(&mut lab, &pids, &order);
    let clients: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(move || {
                (0..20).map(|_| get(port, "/")).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut per_worker: BTreeMap<i32, usize> = BTreeMap::new();
    let mut failed = 0;
    for c in clients {
        for r in c.join().expect("client thread") {
            match r.ok().filter(|(s, _)| *s == 200).and_then(|(_, b)| worker_of(&b))
            {
                Some(pid) => *per_worker.entry(pid).or_default() += 1,
                None => failed += 1,
            }
        }
    }
    spread::concurrent(&mut lab, &pids, &per_worker, failed);
    let (answered, ka) = keepalive_workers(port);
    report::keepalive(&mut lab, answered, &ka);
    check!(
        lab,
        "keepalive_one_worker",
        answered == 10 && ka.len() == 1,
        "a keep-alive connection belongs to the worker that accepted it: \
         {answered} of 10 requests answered, by {n} worker(s)",
        answered,
        n = ka.len()
    );

    lab.section("3. Kill one worker with SIGTERM and one with SIGKILL, under load");
    let load = Load::start(port);
    load.wait_done(20);
    // Workers younger than YOUNG that die count as a crash loop; these are not young.
    procfacts::poll_until(Duration::from_secs(5), || {
        m.workers.iter().all(|w| lab_now() - w.born > YOUNG).then_some(())
    });
    let old = m.pids();
    // ANCHOR: kill
    let (gentle, brutal) = (old[0], old[1]);
    for (pid, sig) in [(gentle, Signal::SIGTERM), (brutal, Signal::SIGKILL)] {
        if let Err(e) = kill(pid, sig) {
            // ESRCH: the worker was already gone, so there was no death to see.
            lab.not_observed("replaced", format_args!("kill({pid}, {sig}): {e}"));
        }
    }
    let killed_at = Instant::now();
    let deadline = Deadline::after(Duration::from_secs(10));
    while m.deaths.len() < 2 && !deadline.expired() {
        m.tick(&mut lab, Duration::from_millis(100)); // SIGCHLD -> waitpid -> fork a replacement
    }
    let dead_at = Instant::now(); // kill() returning did not mean dead; waitpid's report does
    while m.active() < m.want && m.replacing() && !deadline.expired() {
        m.tick(&mut lab, Duration::from_millis(100)); // a crash-loop back-off may delay one
    }
    // ANCHOR_END: kill
    load.wait_done(load.done() + 30);
    let log = load.finish();
    lab.show_tree(me);
    let after = started(&log, dead_at..);
    let after_ok = after.iter().filter(|r| ok(r)).count();
    let new: Vec<Pid> = m.pids().into_iter().filter(|p| !old.contains(p)).collect();
    report::under_load(&mut lab, &log, killed_at, dead_at, &new);
    let died = |pid: Pid| m.deaths.iter().find(|d| d.pid == pid).cloned();
    let gentle_ok = died(gentle).is_some_and(|d| d.status.code() == Some(0));
    let brutal_ok =
        died(brutal).is_some_and(|d| d.status.signal() == Some(Signal::SIGKILL));
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
        // Someone sent SIGQUIT: stop here, honestly.
        while !m.tick(&mut lab, Duration::from_millis(200)) {}
        m.check_stopped(&mut lab);
        lab.check(
            "not_interrupted",
            m.stop_by.is_none(),
            "the demo ran to its end",
        );
        lab.finish();
    }

    lab.section("4. Graceful stop: SIGTERM to the master with a request in flight");
    // From here SIGTERM is blocked and the master's loop takes it (threads inherit the mask).
    SigSet::from(Signal::SIGTERM).thread_block().or_die("pthread_sigmask");
    m.signals.add(Signal::SIGTERM);
    // ANCHOR: graceful
    let in_flight = std::thread::spawn(move || get(port, "/work?ms=600"));
    let sleeper = procfacts::poll_until(Duration::from_secs(10), || {
        m.pids()
            .into_iter()
            .find(|&p| blocked_in(p, libc::SYS_clock_nanosleep, "nanosleep"))
    });
    let stop_at = Instant::now();
    kill(me, Signal::SIGTERM).or_die("kill"); // the master signals itself; its loop takes it
    let before = m.deaths.len();
    while !m.tick(&mut lab, Duration::from_millis(200)) {} // bounded by --grace-ms, then SIGKILL
    let stopped_in = stop_at.elapsed();
    let answer = in_flight.join().expect("in-flight thread");
    // ANCHOR_END: graceful
    // A SIGTERM from anyone else from now on ends the lab (the harness's handler).
    SigSet::from(Signal::SIGTERM).thread_unblock().or_die("pthread_sigmask");
    report::in_flight(&mut lab, sleeper);
    report::in_flight_answer(&mut lab, &answer, stopped_in);
    let told = matches!(&answer, Ok((200, b)) if b.contains("slept 600 ms") && b.contains("told to stop"));
    check!(
        lab,
        "in_flight_finished",
        sleeper.is_some() && told,
        "the request in flight when SIGTERM came was answered 200 (and the worker \
         says it was told to stop meanwhile) before its worker exited"
    );
    let last = &m.deaths[before..];
    let (workers, clean) =
        (last.len(), last.iter().filter(|d| d.status.code() == Some(0)).count());
    let refused = matches!(connect(port), Err(e) if e.contains("refused"));
    report::after_stop(&mut lab, clean, workers, m.stragglers, refused);
    let clean_stop = m.check_stopped(&mut lab);
    lab.check(
        "graceful_exit",
        clean_stop && clean == workers && m.stragglers == 0 && refused,
        "every worker exited on its own with code 0 within the grace time, and the port is closed",
    );
    lab.finish()
}
