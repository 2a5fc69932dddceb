//! Model (d), N event loops, nginx's model: a master holds the port, and starts N loop
//! processes (one per core) that each open their own listening socket on it with
//! SO_REUSEPORT. The kernel spreads new connections over the N sockets by a hash of the
//! addresses; no loop ever wakes for another's connection.

use crate::launch::ServerExec;
use crate::server::shared_flags;
use crate::server::{block_stop_signals, listener, say_ready, wait_for_stop};
use crate::{Args, Model};
use nix::fcntl::OFlag;
use nix::unistd::{fork, getpid, pipe2, ForkResult};
use proclab::{die, fdio, lifeline, Deadline};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// Serve as the master of `n` loop processes until SIGTERM.
pub fn serve(n: usize, port: u16, ready: Option<RawFd>, a: &Args) -> ! {
    let stop = block_stop_signals();
    let (r, w) = pipe2(OFlag::O_CLOEXEC).unwrap_or_else(|e| die("pipe2", e));
    let mut pids = Vec::new();
    // ANCHOR: reuseport
    // A socket that never listens holds the port; each loop binds it again.
    let (_hold, port) = listener(port, true, false);
    let mut flags = vec![format!("--port={port}"), "--reuseport".into()];
    flags.push(format!("--ready-fd={}", w.as_raw_fd()));
    flags.extend(shared_flags(a)); // the app's defaults, the limits
    let exec = ServerExec::new(Model::Loop, 1, &flags); // made before fork
    let master = getpid().as_raw();
    for _ in 0..n {
        // SAFETY: the child calls prctl, getppid, sigprocmask, fcntl, execv.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                lifeline::die_with_parent(master);
                let _ = stop.thread_unblock();
                // SAFETY: the loop keeps the pipe's write end across exec.
                unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETFD, 0) };
                exec.exec() // --serve loop --reuseport --port PORT
            }
            Ok(ForkResult::Parent { child }) => pids.push(child),
            Err(e) => die("fork", e),
        }
    }
    // ANCHOR_END: reuseport
    drop(w);
    // Every loop says its port once it listens: then the group is complete.
    let mut said = vec![0u8; 6 * n];
    let by = Deadline::after(Duration::from_secs(10));
    match fdio::read_full_by(&r, &mut said, by) {
        Ok(k) if k == said.len() => {}
        Ok(_) => {
            die("a loop (it ended before listening)", nix::errno::Errno::EPIPE)
        }
        Err(e) => die("read (the loops' ports)", e),
    }
    say_ready(ready, port, &format!("{n} event loops (SO_REUSEPORT)"));
    wait_for_stop(stop, &pids)
}
