//! The event loop's bookkeeping (plumbing of eventloop.rs): epoll_ctl, a connection's
//! table entry, its one deadline in the ordered set and the timerfd set to the earliest,
//! the answer rendered into its buffer, what is left of it sent, and closing.

use crate::app::{render, route, Cost};
use crate::eventloop::{Conn, Loop, Phase, LISTENER};
use crate::http::{parse, Conn as Http};
use crate::server::Cfg;
use nix::errno::Errno;
use std::os::fd::RawFd;
use std::ptr::null_mut;

/// epoll_ctl(`op`) of `fd` for `events`, tagged `data`.
pub fn watch(
    ep: RawFd,
    op: libc::c_int,
    fd: RawFd,
    events: libc::c_int,
    data: u64,
) {
    let mut ev = libc::epoll_event { events: events as u32, u64: data };
    // SAFETY: `ev` is a live event; the kernel copies it.
    if unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) } < 0 {
        proclab::die("epoll_ctl", Errno::last());
    }
}

impl Loop {
    /// A new connection's entry, idle and without a buffer.
    pub fn add(&mut self, fd: RawFd) {
        let mut buf = Vec::new();
        if self.cfg.big_buffers {
            buf.resize(64 << 10, 1u8); // tests only: 64 KiB, written
            buf.clear();
        }
        let (out, sent, close, eof, timer) = (Vec::new(), 0, false, false, None);
        let conn =
            Conn { phase: Phase::Reading, buf, out, sent, close, eof, timer };
        if self.conns.len() <= fd as usize {
            self.conns.resize_with(fd as usize + 1, || None);
        }
        self.conns[fd as usize] = Some(conn);
        self.open += 1;
    }

    /// Put `fd`'s one deadline at `at` (instead of the one it had).
    pub fn set_timer(&mut self, fd: RawFd, at: u64) {
        let Some(c) = self.conn(fd) else { return };
        if let Some(old) = c.timer.replace(at) {
            self.timers.remove(&(old, fd));
        }
        self.timers.insert((at, fd));
    }

    /// Set the timerfd to the earliest deadline of the set (0 disarms it).
    pub fn arm_timer(&mut self) {
        let next = self.timers.first().map_or(0, |t| t.0);
        if next == self.armed {
            return;
        }
        self.armed = next;
        let ts = |ns: u64| libc::timespec {
            tv_sec: (ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (ns % 1_000_000_000) as libc::c_long,
        };
        let spec = libc::itimerspec { it_interval: ts(0), it_value: ts(next) };
        let abs = libc::TFD_TIMER_ABSTIME;
        // SAFETY: a live itimerspec; the old value is not asked for.
        unsafe { libc::timerfd_settime(self.tfd, abs, &spec, null_mut()) };
    }

    /// Close `fd` and forget it; start accepting again if the loop was full.
    pub fn close(&mut self, fd: RawFd) {
        let Some(c) = self.conns.get_mut(fd as usize).and_then(Option::take) else {
            return;
        };
        if let Some(at) = c.timer {
            self.timers.remove(&(at, fd));
        }
        // SAFETY: our descriptor; closing it also takes it out of the epoll set.
        unsafe { libc::close(fd) };
        self.open -= 1;
        if self.open + 1 == self.cfg.max_conns {
            let (ep, listen) = (self.ep, self.listen);
            watch(ep, libc::EPOLL_CTL_MOD, listen, libc::EPOLLIN, LISTENER);
        }
    }
}

impl Conn {
    /// Parse the request head of `end` bytes, render its answer into `out` and
    /// take the head out of the buffer; the cost to spend, or the error answered.
    pub fn answer(&mut self, end: usize, cfg: &Cfg) -> Result<Cost, u16> {
        let (answer, conn, head_only) = match parse(&self.buf[..end]) {
            Ok(req) => (route(&req, cfg.default), req.conn, req.head_only),
            Err(status) => (Err(status), Http::Close, false),
        };
        self.buf.drain(..end); // a pipelined request stays
        let mut out = [0u8; 512];
        let n = render(&mut out, answer, conn, head_only);
        self.out.extend_from_slice(&out[..n]);
        (self.close, self.phase) = (conn == Http::Close, Phase::Writing);
        answer
    }

    /// Answer `status` and close: a head too large, say.
    pub fn refuse(&mut self, status: u16) {
        let mut out = [0u8; 256];
        let n = render(&mut out, Err(status), Http::Close, false);
        self.out.extend_from_slice(&out[..n]);
        (self.phase, self.close) = (Phase::Writing, true);
    }

    /// Send what is left of the answer; false if the client is gone.
    pub fn flush(&mut self, fd: RawFd) -> bool {
        while self.sent < self.out.len() {
            let rest = &self.out[self.sent..];
            let flags = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
            // SAFETY: the pointer and length describe the unsent part of the answer.
            let n = unsafe {
                let at = rest.as_ptr().cast();
                libc::send(fd, at, rest.len(), flags)
            };
            if n < 0 {
                return Errno::last() == Errno::EAGAIN; // full: wait for EPOLLOUT
            }
            self.sent += n as usize;
        }
        true
    }
}
