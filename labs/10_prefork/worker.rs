//! A worker's loop, the same for worker processes and worker threads: block in accept4 on
//! the listening socket, serve the connection (serve.rs), repeat until told to stop. After
//! `fork` it only makes raw system calls into buffers allocated before the fork.

use crate::bind_and_fork::bind_listener;
use crate::read::Timing;
use crate::serve::{serve_connection, Bufs};
use libc::SOCK_CLOEXEC as CLOEXEC;
use nix::unistd::{getppid, Pid};
use proclab::_exit;
use std::os::fd::RawFd;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};

/// A worker blocked in accept (or in recv: accepted sockets inherit the option) wakes at
/// least this often (SO_RCVTIMEO) to look at STOP, its parent and the clock, in case a
/// signal came just before it entered the call.
pub const TICK_MS: u64 = 500;
/// Set by SIGTERM in a worker (or by the master of the threads model): finish the request
/// in hand, then stop.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// What a worker needs to know. Copied into every worker by fork.
#[derive(Clone, Copy)]
pub struct Cfg {
    pub listen_fd: RawFd,
    pub port: u16,
    pub reuseport: bool,
    /// The deadlines of every connection (read.rs).
    pub timing: Timing,
    /// TCP_DEFER_ACCEPT asked for on the listening socket, in whole seconds (0: off).
    pub defer_s: i32,
    /// A worker leaves after this many requests (0: never), plus a random 0 to `jitter`,
    /// as gunicorn's `--max-requests` and `--max-requests-jitter`.
    pub max_requests: u64,
    pub jitter: u64,
    pub broken: bool,
    /// The demo's attack servers: workers do not narrate.
    pub quiet: bool,
    /// Tests only: SIGTERM makes a worker leave at once, like SIGINT (no graceful stop).
    pub sigterm_fast: bool,
    /// Tests only: a worker waits in epoll_pwait (EPOLLEXCLUSIVE) before accept, so the
    /// kernel wakes the first idle worker that registered, not the one waiting longest.
    pub epoll_exclusive: bool,
    /// Tests only: every answer closes its connection (no keep-alive).
    pub close_each: bool,
}

impl Cfg {
    /// The configuration; the test switches are read here, before any fork.
    pub fn new(fd: RawFd, port: u16, reuseport: bool, timing: Timing) -> Cfg {
        Cfg {
            listen_fd: fd,
            port,
            reuseport,
            timing,
            defer_s: 0,
            max_requests: 0,
            jitter: 0,
            broken: false,
            quiet: false,
            sigterm_fast: proclab::test_removes("sigterm_fast"),
            epoll_exclusive: proclab::test_removes("epoll_exclusive"),
            close_each: proclab::test_removes("close_each"),
        }
    }

    /// The socket a worker accepts on: the shared one, or with SO_REUSEPORT one of its own.
    pub fn listener(&self) -> RawFd {
        if self.reuseport {
            bind_listener(self.port, true, true, self.defer_s).0
        } else {
            self.listen_fd
        }
    }

    /// How many requests this worker serves before it leaves: `max_requests` plus a random
    /// 0 to `jitter` (getrandom(2), a plain system call), or no limit.
    pub fn budget(&self) -> u64 {
        if self.max_requests == 0 {
            return u64::MAX;
        }
        let mut r = [0u8; 8];
        // SAFETY: getrandom writes at most 8 bytes into `r`.
        unsafe { libc::getrandom(r.as_mut_ptr().cast(), 8, 0) };
        self.max_requests + u64::from_ne_bytes(r) % (self.jitter + 1)
    }
}

/// SIGTERM: finish the request in hand, then stop.
pub extern "C" fn on_term(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst); // the loop sees it after the request in hand
}

/// SIGINT, SIGQUIT: leave now.
pub extern "C" fn on_fast(_: libc::c_int) {
    _exit(0)
}

/// Install `handler` for `sig` (None: ignore it), without SA_RESTART: a blocked accept,
/// poll or sleep returns EINTR and the loop looks at STOP at once.
pub fn set_handler(sig: libc::c_int, handler: Option<extern "C" fn(libc::c_int)>) {
    let action = handler.map_or(libc::SIG_IGN, |h| h as *const () as usize);
    // SAFETY: the handlers only store an atomic or call _exit.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = action;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut());
    }
}

/// Accept and serve connections until STOP, the master is gone, or the worker has served
/// its `--max-requests`. Returns (connections, requests) served.
pub fn accept_loop(
    listen_fd: RawFd,
    cfg: &Cfg,
    bufs: &mut Bufs,
    me: i32,
    master: Option<Pid>,
) -> (u64, u64) {
    let (mut conns, mut reqs, mut budget) = (0, 0, cfg.budget());
    let ep = if cfg.epoll_exclusive { exclusive_epoll(listen_fd) } else { -1 };
    // ANCHOR: accept
    while !STOP.load(Ordering::SeqCst) && budget > 0 {
        let mut c = -1;
        if ep < 0 || epoll_ready(ep) {
            // Sleep until the kernel hands us a connection (or a signal, a tick).
            // SAFETY: no address is asked for; the new descriptor is ours to close.
            c = unsafe {
                libc::accept4(listen_fd, null_mut(), null_mut(), CLOEXEC)
            };
        }
        if c < 0 {
            if master.is_some_and(|m| getppid() != m) {
                break; // the master is gone (its PDEATHSIG may be here too)
            }
            continue; // EINTR (a signal) or EAGAIN (the tick): look at STOP
        }
        let served = serve_connection(c, bufs, cfg, me, &mut budget);
        conns += (served > 0) as u64; // one closed before a request does not count
        reqs += served;
        // SAFETY: c is the descriptor accept4 gave us; the client sees EOF.
        unsafe { libc::close(c) };
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
