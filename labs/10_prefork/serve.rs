//! Serving one accepted connection: read a request (under the deadlines of read.rs), route
//! it, write the answer, and again while the client keeps the connection. Called by a
//! worker after `fork`: raw system calls only, into buffers the master allocated before
//! the fork (no heap, no locks). The HTTP parser is in http.rs and the files it names.

use crate::body::Body;
use crate::fields::Framing;
use crate::http::{param, parse, reason, respond, Conn, Req};
use crate::read::{read_body, read_head, BodyEnd, Head};
use crate::request_line::Method;
use crate::wire::{linger, send_all, SliceWriter};
use crate::worker::{Cfg, STOP, TICK_MS};
use nix::errno::Errno;
use proclab::die;
use std::fmt::Write as _;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;

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

/// setsockopt(`level`, `opt`) with the value `v`; the call's return value.
pub fn sockopt<T>(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    v: &T,
) -> libc::c_int {
    // SAFETY: the option value is a live `T` of the declared size.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (v as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    }
}

/// An int socket option at SOL_SOCKET; dies if the kernel refuses it.
pub fn setsockopt_int(fd: RawFd, opt: libc::c_int, v: libc::c_int) {
    if sockopt(fd, libc::SOL_SOCKET, opt, &v) < 0 {
        die("setsockopt", Errno::last());
    }
}

/// accept() on this socket gives up after TICK_MS (EAGAIN), so a worker looks around.
pub fn set_accept_tick(fd: RawFd) {
    let tv =
        libc::timeval { tv_sec: 0, tv_usec: (TICK_MS * 1000) as libc::suseconds_t };
    sockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv); // it bounds accept() too
}

/// Serve requests on one connection until it closes, asks to close, misbehaves, we stop,
/// or `budget` (requests this worker may still serve) runs out. Returns how many requests
/// got an answer.
pub fn serve_connection(
    fd: RawFd,
    bufs: &mut Bufs,
    cfg: &Cfg,
    me: i32,
    budget: &mut u64,
) -> u64 {
    let (mut len, mut served) = (0usize, 0u64);
    loop {
        let t = &cfg.timing;
        let end = match read_head(fd, &mut bufs.req, &mut len, t, served == 0) {
            Head::Complete(end) => end,
            Head::Closed | Head::Silent => return served,
            Head::TooSlow { held_ms, bytes } => {
                let mut text = [0u8; 96];
                let mut w = SliceWriter::new(&mut text);
                let _ = writeln!(
                    w,
                    "request head too slow: {bytes} bytes in {held_ms} ms"
                );
                let n = w.len;
                refuse(fd, &mut bufs.out, &mut bufs.req, 408, &text[..n]);
                return served;
            }
            Head::Bad(status) => {
                refuse(
                    fd,
                    &mut bufs.out,
                    &mut bufs.req,
                    status,
                    reason(status).as_bytes(),
                );
                return served;
            }
        };
        let (head, rest) = bufs.req.split_at_mut(end);
        let mut rest_len = len - end;
        let (keep, next) = match parse(head) {
            Ok(req) => {
                let last =
                    STOP.load(Ordering::SeqCst) || cfg.close_each || *budget <= 1;
                let conn = if last { Conn::Close } else { req.conn };
                let out = &mut bufs.out;
                answer(fd, &req, rest, &mut rest_len, out, conn, cfg, me)
            }
            Err(status) => {
                refuse(fd, &mut bufs.out, rest, status, reason(status).as_bytes());
                (false, 0)
            }
        };
        served += 1;
        *budget = budget.saturating_sub(1);
        if !keep {
            return served;
        }
        // What came after this request is the next one (pipelining).
        bufs.req.copy_within(end + next..end + rest_len, 0);
        len = rest_len - next;
    }
}

/// Answer with an error and close: stop sending, then drain what the client still sends
/// (not a slow client's: it is cut at once).
fn refuse(fd: RawFd, out: &mut [u8], scratch: &mut [u8], status: u16, text: &[u8]) {
    respond(fd, out, status, b"", text, Conn::Close, false);
    let drain_ms = if status == 408 { 0 } else { 500 };
    linger(fd, scratch, drain_ms);
}

/// Answer one request: read its body (or refuse it), then route it. Returns whether to keep
/// the connection, and where in `rest` the next request starts.
#[allow(clippy::too_many_arguments)]
fn answer(
    fd: RawFd,
    req: &Req,
    rest: &mut [u8],
    rest_len: &mut usize,
    out: &mut [u8],
    conn: Conn,
    cfg: &Cfg,
    me: i32,
) -> (bool, usize) {
    let mut body = Body::new(req.body);
    let mut next = 0;
    if req.body != Framing::None {
        // The client waits for this before it sends the body (RFC 9110 §10.1.1).
        if req.expect_continue && !send_all(fd, b"HTTP/1.1 100 Continue\r\n\r\n") {
            return (false, 0);
        }
        let (status, text): (u16, &[u8]) =
            match read_body(fd, rest, rest_len, &mut body, &cfg.timing) {
                BodyEnd::Done(n) => {
                    next = n;
                    (0, b"")
                }
                BodyEnd::Closed => return (false, 0),
                BodyEnd::TooSlow => (408, b"request body too slow\n"),
                BodyEnd::Bad(status) => (status, b"bad request body\n"),
            };
        if status != 0 {
            refuse(fd, out, rest, status, text);
            return (false, 0);
        }
    }
    let mut text = [0u8; 128];
    let mut w = SliceWriter::new(&mut text);
    let (status, headers) = route(req, &body, me, &mut w);
    let n = w.len;
    let sent = respond(fd, out, status, headers, &text[..n], conn, req.head_only);
    (sent && conn != Conn::Close, next)
}

/// The resources, the methods each allows (405 and `Allow` otherwise), and what they do.
/// Writes the body into `w`; returns the status and the header lines to add.
fn route(
    req: &Req,
    body: &Body,
    me: i32,
    w: &mut SliceWriter,
) -> (u16, &'static [u8]) {
    use Method::*;
    let (allow, methods): (&'static [u8], &[Method]) = match req.path {
        b"/" | b"/work" | b"/cpu" => {
            (b"Allow: GET, HEAD, OPTIONS\r\n", &[Get, Head, Options])
        }
        b"/upload" => (b"Allow: POST, PUT, OPTIONS\r\n", &[Post, Put, Options]),
        // The server itself: OPTIONS *, and CONNECT (we are no tunnel).
        b"*" | b"" => (b"Allow: GET, HEAD, POST, PUT, OPTIONS\r\n", &[Options]),
        _ => {
            let _ = writeln!(w, "not found");
            return (404, b"");
        }
    };
    if !methods.contains(&req.method) {
        let _ = writeln!(w, "method not allowed");
        return (405, allow);
    }
    if req.method == Options {
        return (200, allow);
    }
    let status = match req.path {
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
        b"/upload" => {
            let (n, fnv) = (body.len, body.fnv);
            let _ = writeln!(w, "worker {me} received {n} bytes, fnv1a {fnv:016x}");
            200
        }
        _ => {
            let _ = writeln!(w, "worker {me}");
            200
        }
    };
    (status, b"")
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
