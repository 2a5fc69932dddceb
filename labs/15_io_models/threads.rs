//! Model (b), threads, in two forms: a thread per connection (the main thread accepts,
//! each connection gets a new thread that lives as long as it) and a fixed pool of N
//! threads that each block in `accept4`, like prefork workers sharing one address space.

use crate::blocking::{accept_loop, serve_connection, Bufs};
use crate::server::{listener, say_ready, Cfg};
use std::os::fd::RawFd;
use std::ptr::null_mut;

// ANCHOR: per_connection
/// Accept for ever; every connection is served by a thread of its own.
pub fn per_connection(cfg: &Cfg, port: u16, ready: Option<RawFd>) -> ! {
    let (listen, port) = listener(port, false, true);
    say_ready(ready, port, "a thread per connection");
    let flags = libc::SOCK_CLOEXEC;
    loop {
        // SAFETY: no address is asked for; the descriptor goes to the thread.
        let c = unsafe { libc::accept4(listen, null_mut(), null_mut(), flags) };
        if c < 0 {
            continue;
        }
        let cfg = *cfg;
        let thread = std::thread::Builder::new().spawn(move || {
            // This thread sleeps in poll while its client is idle.
            serve_connection(c, &mut Bufs::new(), &cfg);
            // SAFETY: this thread's descriptor; the client sees EOF.
            unsafe { libc::close(c) };
        });
        if thread.is_err() {
            // SAFETY: no thread could be made (EAGAIN): refuse the connection.
            unsafe { libc::close(c) };
        }
    }
}
// ANCHOR_END: per_connection

/// N threads that block in accept on one socket; the main thread only waits.
pub fn pool(cfg: &Cfg, n: usize, port: u16, ready: Option<RawFd>) -> ! {
    let (listen, port) = listener(port, false, true);
    // ANCHOR: pool
    for _ in 0..n {
        let cfg = *cfg;
        let started = std::thread::Builder::new().spawn(move || {
            if cfg.one_cpu {
                let _ = proclab::cpu::pin(0); // tests only: one core for all
            }
            accept_loop(listen, &mut Bufs::new(), &cfg)
        });
        if let Err(e) = started {
            proclab::die(
                "pthread_create",
                nix::errno::Errno::from_raw(
                    e.raw_os_error().unwrap_or(libc::EAGAIN),
                ),
            );
        }
    }
    // ANCHOR_END: pool
    say_ready(ready, port, &format!("a pool of {n} threads"));
    loop {
        std::thread::park(); // SIGTERM ends the process, threads and all
    }
}
