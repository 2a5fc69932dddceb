//! Serving one accepted connection: read a request head (bounded in size and in time), route
//! it, write the answer. Called by a worker after `fork`, so the same rules hold as in the
//! lab: raw system calls only, into buffers the master allocated before the fork (no heap,
//! no locks). The HTTP parser and the response writer are in http.rs.

use crate::http::{find, linger, param, parse, respond, Conn, Req, SliceWriter};
use crate::worker::{Cfg, STOP, TICK_MS};
use nix::errno::Errno;
use proclab::die;
use std::fmt::Write as _;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Largest request head (request line + headers) a worker accepts; more gets 431.
const REQ_MAX: usize = 8192;
/// The response buffer: status line, headers and a short body.
const OUT_MAX: usize = 1024;

/// Buffers a worker uses; allocated by the master before fork, so a worker never allocates.
pub struct Bufs {
    req: Vec<u8>,
    out: Vec<u8>,
}

impl Bufs {
    pub fn new() -> Bufs {
        Bufs { req: vec![0; REQ_MAX], out: vec![0; OUT_MAX] }
    }
}

/// setsockopt(SOL_SOCKET, `opt`) with the value `v`; the call's return value.
fn sockopt<T>(fd: RawFd, opt: libc::c_int, v: &T) -> libc::c_int {
    // SAFETY: the option value is a live `T` of the declared size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (v as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    }
}

/// An int socket option; dies if the kernel refuses it.
pub fn setsockopt_int(fd: RawFd, opt: libc::c_int, v: libc::c_int) {
    if sockopt(fd, opt, &v) < 0 {
        die("setsockopt", Errno::last());
    }
}

/// accept() on this socket, and recv() on the sockets it accepts, give up after TICK_MS
/// (EAGAIN), so a worker looks around.
pub fn set_accept_tick(fd: RawFd) {
    let tv =
        libc::timeval { tv_sec: 0, tv_usec: (TICK_MS * 1000) as libc::suseconds_t };
    sockopt(fd, libc::SO_RCVTIMEO, &tv); // SO_RCVTIMEO bounds accept() too
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
fn read_head(
    fd: RawFd,
    buf: &mut [u8],
    len: &mut usize,
    timeout: Duration,
    fresh: bool,
) -> Head {
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
        let (at, room) = (room.as_mut_ptr().cast(), room.len());
        // Sleep until bytes come, a signal, or the 500 ms SO_RCVTIMEO tick that the
        // connection inherited from the listening socket.
        // SAFETY: the pointer and length describe the free part of the buffer.
        let n = unsafe { libc::recv(fd, at, room, flags) };
        match n {
            0 => return Head::Closed, // EOF: the client closed
            n if n < 0 => match Errno::last() {
                Errno::EAGAIN if idle_stop => return Head::Closed, // nothing had arrived
                Errno::EAGAIN | Errno::EINTR => continue, // the tick or a signal: look again
                _ => return Head::Closed,                 // ECONNRESET and the like
            },
            n => *len += n as usize,
        }
    }
}

/// Serve requests on one connection until it closes, asks to close, misbehaves or we stop.
/// Returns how many requests got an answer.
pub fn serve_connection(fd: RawFd, bufs: &mut Bufs, cfg: &Cfg, me: i32) -> u64 {
    let (mut len, mut served) = (0usize, 0u64);
    loop {
        let end = match read_head(
            fd,
            &mut bufs.req,
            &mut len,
            cfg.timeout,
            served == 0,
        ) {
            Head::Complete(end) => end,
            Head::Closed => return served,
            Head::TooLarge => {
                respond(
                    fd,
                    &mut bufs.out,
                    431,
                    b"request head too large\n",
                    Conn::Close,
                    false,
                );
                linger(fd, &mut bufs.req);
                return served;
            }
            Head::TimedOut => {
                respond(
                    fd,
                    &mut bufs.out,
                    408,
                    b"request too slow\n",
                    Conn::Close,
                    false,
                );
                return served;
            }
        };
        let keep = match parse(&bufs.req[..end]) {
            Ok(req) => {
                let conn = if STOP.load(Ordering::SeqCst) || cfg.close_each {
                    Conn::Close
                } else {
                    req.conn
                };
                let mut body = [0u8; 128];
                let mut w = SliceWriter::new(&mut body);
                let status = route(&req, me, &mut w);
                let n = w.len;
                respond(fd, &mut bufs.out, status, &body[..n], conn, req.head_only)
                    && conn != Conn::Close
            }
            Err(status) => {
                respond(
                    fd,
                    &mut bufs.out,
                    status,
                    b"bad request\n",
                    Conn::Close,
                    false,
                );
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
                let _ = write!(w, "worker {me} slept {ms} ms");
                if STOP.load(Ordering::SeqCst) {
                    let _ = write!(w, ", told to stop meanwhile");
                }
                let _ = writeln!(w);
                200
            }
            None => {
                let _ = writeln!(w, "want /work?ms=N with N <= 10000");
                400
            }
        },
        b"/cpu" => match param(req.query, b"n")
            .filter(|&n| (1..=50_000_000).contains(&n))
        {
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
        while libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &t,
            std::ptr::null_mut(),
        ) == libc::EINTR
        {} // until the absolute deadline
    }
}

/// `n` rounds of a multiply-add: CPU work the optimiser cannot remove.
fn burn(n: u64) -> u64 {
    let mut x = n;
    for i in 0..n {
        x = std::hint::black_box(
            x.wrapping_mul(6364136223846793005).wrapping_add(i),
        );
    }
    x
}
