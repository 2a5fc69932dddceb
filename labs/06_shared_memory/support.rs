//! Small helpers of the shm lab: a start gate, waiting for a flag in shared memory, pinning
//! to a CPU, and the chunks of section 6 (a pattern, stamped and verified, written and read
//! whole). `Gate::wait`, `wait_until`, `pin`, `stamp` and `write_all` run in forked children:
//! they neither allocate nor lock. The pipe lab and benches/ipc.rs have their own copies of
//! some of them.

use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::{pipe, read, Pid};
use proclab::{OrDie, Stopwatch};
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

/// Pin the calling process to one CPU.
pub fn pin(cpu: usize) {
    let mut set = CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = sched_setaffinity(Pid::from_raw(0), &set); // 0 = the calling process
    }
}

/// `len` pseudo-random bytes (xorshift).
pub fn pattern(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The source chunk, with chunk number `i` stamped in its first 8 bytes.
pub fn stamp(buf: &mut [u8], i: u64) {
    buf[..8].copy_from_slice(&i.to_le_bytes());
}

/// True if `got` is `src` stamped with `i`.
pub fn verify(got: &[u8], src: &[u8], i: u64) -> bool {
    got[..8] == i.to_le_bytes() && got[8..] == src[8..]
}

pub use proclab::fdio::{read_full, write_all};

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
