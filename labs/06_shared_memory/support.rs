//! Small helpers of the shm lab: a start gate, waiting for a flag in shared memory, and
//! the chunks of section 6 (stamped and verified). `Gate::wait`, `wait_until` and `stamp`
//! run in forked children: they neither allocate nor lock.

use nix::unistd::{pipe, read};
use proclab::{Deadline, OrDie, Stopwatch};
use std::os::fd::OwnedFd;

/// A start gate: children forked after `new` block in `wait` until the parent `open`s it,
/// so that they all start together, and the clock with them.
pub struct Gate {
    rx: OwnedFd,
    tx: OwnedFd,
}

impl Gate {
    pub fn new() -> Gate {
        let (rx, tx) = pipe().or_die("pipe");
        Gate { rx, tx }
    }

    /// In a child: close its copy of the write end, then read until EOF, which comes when
    /// the parent opens the gate. Async-signal-safe (close, read).
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

/// The source chunk, with chunk number `i` stamped in its first 8 bytes.
pub fn stamp(buf: &mut [u8], i: u64) {
    buf[..8].copy_from_slice(&i.to_le_bytes());
}

/// True if `got` is `src` stamped with `i`.
pub fn verify(got: &[u8], src: &[u8], i: u64) -> bool {
    got[..8] == i.to_le_bytes() && got[8..] == src[8..]
}

/// Spin briefly, then yield the CPU, until `ready()`.
pub fn wait_until(mut ready: impl FnMut() -> bool) {
    let mut spins = 0u32;
    while !ready() {
        spins += 1;
        if spins < 200 {
            std::hint::spin_loop();
        } else {
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() }; // let the other side run (on one CPU it must)
        }
    }
}

/// [`wait_until`] for the parent, with a deadline (lab time): false if `ready()` did not
/// come true by then (the other side stopped or died).
pub fn spin_until(by: Deadline, mut ready: impl FnMut() -> bool) -> bool {
    let mut spins = 0u32;
    while !ready() {
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(1024) && by.expired() {
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
