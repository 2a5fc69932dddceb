//! Reading a request under its deadlines: the worker's defences against slow and idle
//! clients. A new connection's first byte, a kept-alive connection's next request, and a
//! head (or body) from its first byte, each with a clock of its own; the head's as Apache's
//! mod_reqtimeout (`header=20-40,MinRate=500`). Raw system calls only (a forked worker).

use crate::body::{Body, Step};
use crate::http::{scan, Scan};
use crate::worker::{STOP, TICK_MS};
use nix::errno::Errno;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The deadlines of a connection; None: no deadline (that defence is off).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long a new connection may stay silent.
    pub first_byte: Option<Duration>,
    /// The listening socket has TCP_DEFER_ACCEPT: the kernel hands a connection over when
    /// its first byte arrives, or silent once the deferral is over. A silent one has waited
    /// out its first-byte time already and is closed at once.
    pub deferred: bool,
    /// How long a kept-alive connection may wait for its next request (gunicorn: 2 s).
    pub keepalive: Option<Duration>,
    /// A head may take this from its first byte, plus 1 s per `min_rate` bytes received,
    /// up to `head_max` in all; a body likewise, on a clock of its own.
    pub head: Option<Duration>,
    pub head_max: Duration,
    pub min_rate: u64,
}

impl Timing {
    // ANCHOR: rate
    /// How long `bytes` may take to arrive, from the first of them: `head`, plus
    /// one second per `min_rate` bytes, at most `head_max` (mod_reqtimeout's rule).
    pub fn allowed(&self, bytes: u64) -> Option<Duration> {
        let base = self.head?; // None: no deadline at all
        let per_rate = bytes.saturating_mul(1000).checked_div(self.min_rate);
        let extra = Duration::from_millis(per_rate.unwrap_or(0));
        Some((base + extra).min(self.head_max.max(base)))
    }
    // ANCHOR_END: rate
}

/// How reading a head ended.
pub enum Head {
    /// A complete head of this many bytes is at the start of the buffer.
    Complete(usize),
    /// The client closed, or the connection was idle when we stopped: close quietly.
    Closed,
    /// No request began in time (first byte, or the next request on a kept-alive
    /// connection): close quietly.
    Silent,
    /// The head did not arrive in time: `bytes` had come `held_ms` after the first (408).
    TooSlow { held_ms: u64, bytes: usize },
    /// Refused before it ended (400, 414, 431): see `http::scan`.
    Bad(u16),
}

/// Read until the buffer holds a whole request head. `fresh`: a new connection (else a
/// kept-alive one, whose previous request is answered).
pub fn read_head(
    fd: RawFd,
    buf: &mut [u8],
    len: &mut usize,
    t: &Timing,
    fresh: bool,
) -> Head {
    let since = Instant::now();
    // ANCHOR: idle_limits
    let silent_for = match (fresh, t.deferred) {
        (true, true) => Some(Duration::ZERO), // the kernel waited for us
        (true, false) => t.first_byte,
        (false, _) => t.keepalive, // apart from the head's clock
    };
    let mut first = (*len > 0).then(Instant::now); // a pipelined request
    let mut ready = fresh; // its bytes came with it; a kept-alive one waits first
    loop {
        if ready && *len < buf.len() && !take(fd, buf, len, &mut first) {
            return Head::Closed;
        }
        match scan(&buf[..*len], *len == buf.len()) {
            Scan::Complete(end) => return Head::Complete(end),
            Scan::Bad(status) => return Head::Bad(status),
            Scan::Partial => {}
        }
        let deadline = match first {
            None => silent_for.map(|d| since + d),
            Some(f) => t.allowed(*len as u64).map(|d| f + d),
        };
        // ANCHOR_END: idle_limits
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return match first {
                None => Head::Silent,
                Some(f) => {
                    let held_ms = now.duration_since(f).as_millis() as u64;
                    Head::TooSlow { held_ms, bytes: *len }
                }
            };
        }
        // Stopping: an idle kept-alive connection is closed; a new one is not idle (its
        // client is sending the request we accepted it for).
        if STOP.load(Ordering::SeqCst) && *len == 0 && !fresh {
            return Head::Closed;
        }
        ready = wait_readable(fd, deadline.map(|d| d - now));
    }
}

/// Take what has arrived (without blocking). False if the connection is over (EOF, reset).
fn take(
    fd: RawFd,
    buf: &mut [u8],
    len: &mut usize,
    first: &mut Option<Instant>,
) -> bool {
    let room = &mut buf[*len..];
    // SAFETY: the pointer and length describe the free part of the buffer.
    let n = unsafe {
        libc::recv(fd, room.as_mut_ptr().cast(), room.len(), libc::MSG_DONTWAIT)
    };
    match n {
        0 => false, // EOF: the client closed
        n if n < 0 => matches!(Errno::last(), Errno::EAGAIN | Errno::EINTR),
        n => {
            *len += n as usize;
            first.get_or_insert_with(Instant::now);
            true
        }
    }
}

/// Sleep until `fd` has bytes (true), for at most `left` and at most one tick (so the
/// worker looks at STOP and the clock), or until a signal.
fn wait_readable(fd: RawFd, left: Option<Duration>) -> bool {
    let tick = Duration::from_millis(TICK_MS);
    let ms = left.unwrap_or(tick).min(tick).as_micros().div_ceil(1000) as i32;
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}

/// How reading a body ended.
pub enum BodyEnd {
    /// The body is complete; the bytes from this offset of the buffer on are the next
    /// request's.
    Done(usize),
    Closed,
    /// The body did not arrive in time (408).
    TooSlow,
    /// Malformed (400), too large (413), trailers too large (431).
    Bad(u16),
}

/// Read and check a body: `buf[..*len]` holds what came after the head. Keeps none of it,
/// only `body`'s length and checksum; the buffer is reused as the bytes come.
pub fn read_body(
    fd: RawFd,
    buf: &mut [u8],
    len: &mut usize,
    body: &mut Body,
    t: &Timing,
) -> BodyEnd {
    let start = Instant::now();
    let mut first = Some(start);
    loop {
        match body.feed(&buf[..*len]) {
            Step::Done(n) => return BodyEnd::Done(n),
            Step::Bad(status) => return BodyEnd::Bad(status),
            Step::More => *len = 0, // every byte taken: reuse the buffer
        }
        let deadline = t.allowed(body.len).map(|d| start + d);
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return BodyEnd::TooSlow;
        }
        let _ = wait_readable(fd, deadline.map(|d| d - now));
        if !take(fd, buf, len, &mut first) {
            return BodyEnd::Closed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_gets_one_second_more_per_min_rate_bytes_up_to_the_max() {
        let ms = Duration::from_millis;
        let t = Timing {
            first_byte: None,
            deferred: false,
            keepalive: None,
            head: Some(ms(20_000)),
            head_max: ms(40_000),
            min_rate: 500,
        };
        assert_eq!(t.allowed(0), Some(ms(20_000)), "header=20");
        assert_eq!(
            t.allowed(500),
            Some(ms(21_000)),
            "MinRate=500: 1 s per 500 bytes"
        );
        assert_eq!(t.allowed(50_000), Some(ms(40_000)), "-40: at most");
        assert_eq!(Timing { min_rate: 0, ..t }.allowed(9999), Some(ms(20_000)));
        assert_eq!(Timing { head: None, ..t }.allowed(1), None, "the defence off");
    }
}
