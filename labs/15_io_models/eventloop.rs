//! Model (c), one event loop: one thread, non-blocking sockets, and `epoll_wait` the
//! only call it sleeps in. The waiting part of a request is a timer, not a blocked
//! thread: deadlines sit in an ordered set and one timerfd rings at the earliest. Each
//! loop of model (d) runs this same code, on a SO_REUSEPORT socket of its own.

use crate::app::spend_cpu;
use crate::blocking::HEAD_MAX;
use crate::loopkit::watch;
use crate::server::Cfg;
use crate::wire::find;
use nix::errno::Errno;
use proclab::clock::now_ns;
use std::collections::BTreeSet;
use std::os::fd::RawFd;
use std::ptr::null_mut;
use std::time::Duration;

pub const LISTENER: u64 = u64::MAX;
pub const TIMER: u64 = u64::MAX - 1;

#[derive(Clone, Copy, PartialEq)]
pub enum Phase {
    Reading,
    Waiting,
    Writing,
}

// ANCHOR: conn
/// What a blocked thread keeps on its stack, kept here per connection instead.
pub struct Conn {
    pub phase: Phase,
    pub buf: Vec<u8>, // request bytes so far: empty, no heap, while idle
    pub out: Vec<u8>, // the answer, and how much of it is sent
    pub sent: usize,
    pub close: bool,        // after this answer (Connection: close)
    pub eof: bool,          // the client has closed its side
    pub timer: Option<u64>, // its one deadline: idle until, or waiting until
}
// ANCHOR_END: conn

pub struct Loop {
    pub ep: RawFd,
    pub tfd: RawFd,
    pub listen: RawFd,
    pub conns: Vec<Option<Conn>>, // by descriptor number
    pub timers: BTreeSet<(u64, RawFd)>,
    pub armed: u64,
    pub open: usize,
    pub cfg: Cfg,
}

/// Serve on `listen` for ever, in this one thread.
pub fn run(listen: RawFd, cfg: &Cfg) -> ! {
    // ANCHOR: setup
    // SAFETY: plain system calls; the descriptors live as long as the process.
    let (ep, tfd) = unsafe {
        let flags = libc::fcntl(listen, libc::F_GETFL) | libc::O_NONBLOCK;
        libc::fcntl(listen, libc::F_SETFL, flags); // accept4 never sleeps
        let tfd_flags = libc::TFD_NONBLOCK | libc::TFD_CLOEXEC;
        let tfd = libc::timerfd_create(libc::CLOCK_MONOTONIC, tfd_flags);
        (libc::epoll_create1(libc::EPOLL_CLOEXEC), tfd)
    };
    watch(ep, libc::EPOLL_CTL_ADD, listen, libc::EPOLLIN, LISTENER);
    watch(ep, libc::EPOLL_CTL_ADD, tfd, libc::EPOLLIN, TIMER);
    // ANCHOR_END: setup
    let (conns, timers, cfg) = (Vec::new(), BTreeSet::new(), *cfg);
    let mut lp = Loop { ep, tfd, listen, conns, timers, armed: 0, open: 0, cfg };
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 256];
    // ANCHOR: loop
    loop {
        // The one place this thread sleeps: until a socket or the timer is ready.
        // SAFETY: the kernel writes at most 256 events into the array.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), 256, -1) };
        for ev in &events[..n.max(0) as usize] {
            let (data, flags) = (ev.u64, ev.events); // out of a packed struct
            match data {
                LISTENER => lp.accept_all(),
                TIMER => lp.expire(),
                fd => lp.ready(fd as RawFd, flags),
            }
        }
        lp.arm_timer(); // the timerfd rings at the earliest deadline in the set
    }
    // ANCHOR_END: loop
}

impl Loop {
    pub fn conn(&mut self, fd: RawFd) -> Option<&mut Conn> {
        self.conns.get_mut(fd as usize).and_then(Option::as_mut)
    }

    /// Take every connection waiting in the kernel's queue, up to the cap.
    fn accept_all(&mut self) {
        let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        while self.open < self.cfg.max_conns {
            // SAFETY: no address is asked for; the descriptor is ours to close.
            let c = unsafe {
                libc::accept4(self.listen, null_mut(), null_mut(), flags)
            };
            if c < 0 {
                return; // EAGAIN: the queue is empty
            }
            let edge =
                libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;
            watch(self.ep, libc::EPOLL_CTL_ADD, c, edge, c as u64);
            self.add(c);
            self.set_timer(c, now_ns() + self.cfg.keepalive.as_nanos() as u64);
        }
        // Full, like nginx at worker_connections: stop watching the listening
        // socket until a connection closes; new clients wait in the kernel's queue.
        watch(self.ep, libc::EPOLL_CTL_MOD, self.listen, 0, LISTENER);
    }

    /// A connection is readable, writable, or gone.
    fn ready(&mut self, fd: RawFd, flags: u32) {
        if flags & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
            return self.close(fd);
        }
        if flags & (libc::EPOLLIN | libc::EPOLLRDHUP) as u32 != 0 {
            self.read(fd);
        }
        self.step(fd);
    }

    /// Read all that is there (edge-triggered: no new event for what is left).
    fn read(&mut self, fd: RawFd) {
        let Some(c) = self.conn(fd) else { return };
        let mut chunk = [0u8; 4096];
        while c.buf.len() < HEAD_MAX {
            let room = chunk.len().min(HEAD_MAX - c.buf.len());
            // SAFETY: the pointer and length describe the local chunk.
            let n = unsafe { libc::recv(fd, chunk.as_mut_ptr().cast(), room, 0) };
            if n > 0 {
                c.buf.extend_from_slice(&chunk[..n as usize]);
                continue;
            }
            c.eof |= n == 0 || Errno::last() != Errno::EAGAIN; // EOF or an error
            return;
        }
    }

    /// Move a connection on as far as it can go now.
    fn step(&mut self, fd: RawFd) {
        let keepalive = self.cfg.keepalive.as_nanos() as u64;
        while let Some(c) = self.conn(fd) {
            match c.phase {
                Phase::Waiting => return, // the timer moves it on
                Phase::Writing => {
                    if !c.flush(fd) || (c.sent == c.out.len() && c.close) {
                        return self.close(fd);
                    }
                    if c.sent < c.out.len() {
                        return; // the kernel's buffer is full: EPOLLOUT will come
                    }
                    (c.phase, c.sent) = (Phase::Reading, 0);
                    c.out.clear();
                    self.read(fd); // what came while we were busy
                    self.set_timer(fd, now_ns() + keepalive);
                }
                Phase::Reading => match find(&c.buf, b"\r\n\r\n") {
                    Some(end) => self.start(fd, end + 4),
                    None if c.eof => return self.close(fd),
                    None if c.buf.len() >= HEAD_MAX => c.refuse(431),
                    None => return, // more bytes will come
                },
            }
        }
    }

    // ANCHOR: request
    /// A whole request head is in: spend its CPU now, then wait by a timer.
    fn start(&mut self, fd: RawFd, end: usize) {
        let cfg = self.cfg;
        let Some(c) = self.conn(fd) else { return };
        let Ok(cost) = c.answer(end, &cfg) else {
            return; // a 400 or a 404: sent at once
        };
        spend_cpu(cost.cpu_ms, cfg.wall_clock); // nobody else is served now
        let wait_ms = if cfg.skip_wait { 0 } else { cost.wait_ms }; // tests only
        if wait_ms > 0 && cfg.loop_sleeps {
            // Tests only: the thread sleeps through the wait, as a worker does.
            std::thread::sleep(Duration::from_millis(wait_ms));
        } else if wait_ms > 0 {
            c.phase = Phase::Waiting; // no thread waits: a deadline in the set
            self.set_timer(fd, now_ns() + wait_ms * 1_000_000);
        }
    }
    // ANCHOR_END: request

    // ANCHOR: expire
    /// The timerfd rang: answer the requests whose wait is over, close the idle.
    fn expire(&mut self) {
        let mut ticks = [0u8; 8];
        // SAFETY: the timerfd gives its count of expirations as 8 bytes.
        unsafe { libc::read(self.tfd, ticks.as_mut_ptr().cast(), 8) };
        self.armed = 0;
        let now = now_ns();
        while let Some(&(at, fd)) = self.timers.first().filter(|t| t.0 <= now) {
            self.timers.remove(&(at, fd));
            let Some(c) = self.conn(fd) else { continue };
            c.timer = None;
            if c.phase == Phase::Waiting {
                c.phase = Phase::Writing; // the backend "answered": send ours
                self.step(fd);
            } else {
                self.close(fd); // idle past the keep-alive, or a head too slow
            }
        }
    }
    // ANCHOR_END: expire
}
