//! Serving a connection the blocking way, shared by the prefork workers and both thread
//! models: read a request head (the thread sleeps in poll), spend the CPU, sleep through
//! the waiting part, send the answer; keep the connection for the next request. Into
//! buffers made beforehand, with system calls only: a forked worker may run it.

use crate::app::{render, route, spend_cpu};
use crate::http::{parse, Conn};
use crate::server::Cfg;
use crate::wire::{find, send_all};
use proclab::clock::now_ns;
use std::os::fd::RawFd;
use std::ptr::null_mut;
use std::time::Duration;

/// The largest request head taken; more gets 431.
pub const HEAD_MAX: usize = 8192;

/// A worker's buffers: made before fork (a prefork worker never allocates) or per thread.
pub struct Bufs {
    req: Vec<u8>,
    out: Vec<u8>,
}

impl Bufs {
    pub fn new() -> Bufs {
        Bufs { req: vec![0; HEAD_MAX], out: vec![0; 512] }
    }
}

// ANCHOR: accept_loop
/// A prefork worker, or a thread of the pool: accept, serve, again, for ever.
pub fn accept_loop(listen: RawFd, bufs: &mut Bufs, cfg: &Cfg) -> ! {
    loop {
        // Sleep until the kernel hands this worker a connection.
        // SAFETY: no address is asked for; the descriptor is ours to close.
        let c = unsafe {
            libc::accept4(listen, null_mut(), null_mut(), libc::SOCK_CLOEXEC)
        };
        if c < 0 {
            continue; // EINTR, ECONNABORTED: accept again
        }
        // Busy until this client leaves: the next waits in the kernel's queue.
        serve_connection(c, bufs, cfg);
        // SAFETY: our descriptor; the client sees EOF.
        unsafe { libc::close(c) };
    }
}
// ANCHOR_END: accept_loop

// ANCHOR: serve
/// Answer requests on `fd` until the client closes, asks to, or idles too long.
pub fn serve_connection(fd: RawFd, b: &mut Bufs, cfg: &Cfg) {
    let mut len = 0;
    while let Some(end) = read_head(fd, &mut b.req, &mut len, cfg.keepalive) {
        let (answer, conn, head_only) = match parse(&b.req[..end]) {
            Ok(req) => (route(&req, cfg.default), req.conn, req.head_only),
            Err(status) => (Err(status), Conn::Close, false),
        };
        if let Ok(cost) = answer {
            spend_cpu(cost.cpu_ms, cfg.wall_clock);
            wait(cost.wait_ms, cfg); // asleep: it serves nobody meanwhile
        }
        let n = render(&mut b.out, answer, conn, head_only);
        let sent = send_all(fd, &b.out[..n]);
        b.req.copy_within(end..len, 0); // a pipelined request stays
        len -= end;
        if !sent || conn == Conn::Close {
            return;
        }
    }
}
// ANCHOR_END: serve

/// The waiting part: a sleep (tests only: a busy CPU instead).
fn wait(ms: u64, cfg: &Cfg) {
    if cfg.busy_wait {
        spend_cpu(ms, cfg.wall_clock);
    } else {
        std::thread::sleep(Duration::from_millis(ms)); // nanosleep, again on EINTR
    }
}

/// Read until `buf` starts with a whole request head; its length, or None when the
/// client closed, sent too much (431), or took longer than `timeout` in all.
fn read_head(
    fd: RawFd,
    buf: &mut [u8],
    len: &mut usize,
    timeout: Duration,
) -> Option<usize> {
    let deadline = now_ns() + timeout.as_nanos() as u64;
    loop {
        if let Some(i) = find(&buf[..*len], b"\r\n\r\n") {
            return Some(i + 4);
        }
        if *len == buf.len() {
            let mut out = [0u8; 256];
            let n = render(&mut out, Err(431), Conn::Close, false);
            send_all(fd, &out[..n]);
            return None;
        }
        let left_ms = deadline.saturating_sub(now_ns()).div_ceil(1_000_000);
        if left_ms == 0 {
            return None; // idle too long, or a head too slow: close
        }
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one live pollfd.
        if unsafe { libc::poll(&mut p, 1, left_ms.min(60_000) as i32) } <= 0 {
            continue; // the time is up, or a signal: look again
        }
        let room = &mut buf[*len..];
        // SAFETY: the pointer and length describe the free part of the buffer.
        let n = unsafe { libc::recv(fd, room.as_mut_ptr().cast(), room.len(), 0) };
        if n <= 0 {
            return None; // EOF or an error: the client is gone
        }
        *len += n as usize;
    }
}
