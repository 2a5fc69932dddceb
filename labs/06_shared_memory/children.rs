//! How the lab starts its children together, waits for them, and reaps them, always
//! with a deadline: a start gate (a pipe whose EOF releases them all), a spin-wait on a
//! flag in shared memory, and a reap that kills a child that has not ended in time.

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{pipe, read, Pid};
use proclab::wait::waitpid_by;
use proclab::{cleanup, Deadline, OrDie, Status, Stopwatch};
use std::os::fd::OwnedFd;
use std::time::Duration;

/// How long a child that should end by itself may take (lab time) before it counts as
/// hung: it is then killed, and what it did not do is observed.
pub const LIMIT: Duration = Duration::from_secs(30);

/// Reap `child` within [`LIMIT`], killing it first if it has not ended by then.
pub fn reap(child: Pid) -> Status {
    let status = waitpid_by(child, Deadline::after(LIMIT)).unwrap_or_else(|| {
        let _ = kill(child, Signal::SIGKILL);
        Status(waitpid(child, None))
    });
    cleanup::forget(child);
    status
}

/// A start gate: children forked after `new` block in `wait` until the parent `open`s
/// it, so that they all start together, and the clock with them.
pub struct Gate {
    rx: OwnedFd,
    tx: OwnedFd,
}

impl Gate {
    pub fn new() -> Gate {
        let (rx, tx) = pipe().or_die("pipe");
        Gate { rx, tx }
    }

    /// In a child: close its copy of the write end, then read until EOF, which comes
    /// when the parent opens the gate. Async-signal-safe (close, read).
    pub fn wait(self) {
        drop(self.tx);
        let _ = read(&self.rx, &mut [0u8; 1]);
    }

    /// In the parent, after forking: start a stopwatch and release every child at once.
    pub fn open(self) -> Stopwatch {
        drop(self.rx);
        let sw = Stopwatch::start();
        drop(self.tx); // the last write end: every reader gets EOF
        sw
    }
}

/// Spin a little, then yield the CPU (on one CPU the other side must run), until
/// `ready()`. With a deadline (the parent's), false if it passed first; a child passes
/// None: its parent judges, and its lifeline ends it with the lab. Async-signal-safe.
pub fn spin_until(by: Option<Deadline>, mut ready: impl FnMut() -> bool) -> bool {
    let mut spins = 0u32;
    while !ready() {
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(1024) && by.is_some_and(|d| d.expired()) {
            return false;
        }
        if spins < 200 {
            std::hint::spin_loop();
        } else {
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
        }
    }
    true
}
