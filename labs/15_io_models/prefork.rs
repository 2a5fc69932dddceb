//! Model (a), prefork: the master opens one listening socket and forks N workers; each
//! inherits the socket, blocks in `accept4` on it and serves one connection at a time
//! (blocking.rs), as in the prefork lab (chapter 10), whose HTTP code it shares.

use crate::blocking::{accept_loop, Bufs};
use crate::server::{block_stop_signals, listener, say_ready, wait_for_stop, Cfg};
use nix::unistd::{fork, getpid, ForkResult};
use proclab::{die, lifeline};
use std::os::fd::RawFd;

/// Serve as a master of `workers` worker processes until SIGTERM.
pub fn serve(cfg: &Cfg, workers: usize, port: u16, ready: Option<RawFd>) -> ! {
    let stop = block_stop_signals(); // the workers unblock them again
    let mut pids = Vec::new();
    // ANCHOR: prefork
    let (listen, port) = listener(port, false, true); // before fork: shared
    let master = getpid().as_raw();
    let mut bufs = Bufs::new(); // every worker gets a copy: none allocates
    for _ in 0..workers {
        // SAFETY: the worker makes system calls into `bufs`, never returns.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                lifeline::die_with_parent(master); // SIGKILL when it dies
                let _ = stop.thread_unblock(); // SIGTERM kills a worker
                accept_loop(listen, &mut bufs, cfg)
            }
            Ok(ForkResult::Parent { child }) => pids.push(child),
            Err(e) => die("fork", e),
        }
    }
    // ANCHOR_END: prefork
    say_ready(ready, port, &format!("prefork, {workers} workers,"));
    wait_for_stop(stop, &pids)
}
