//! The job: the same pure function in the process pool, the thread pools and Python, and
//! the ways a task can misbehave in a worker.

use std::time::Duration;

/// One round of splitmix64: a few ns of arithmetic, no memory. The Python script has the same.
pub fn mix(z: u64) -> u64 {
    let z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `rounds` rounds of `mix`: `work(x, 1)` is the tiny task, many rounds a CPU-heavy one.
pub fn work(x: u64, rounds: u32) -> u64 {
    let mut z = x;
    for _ in 0..rounds {
        z = mix(std::hint::black_box(z));
    }
    z
}

/// Rounds of `mix` in a heavy task (a few hundred µs).
pub const HEAVY_ROUNDS: u32 = 50_000;

/// What a worker does with a task besides computing it: the lab's ways of misbehaving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal = 0,
    /// Sleeps `SLOW` first.
    Slow = 1,
    /// Hangs on its first attempt (the lab kills the worker), runs normally on the retry.
    CrashOnce = 2,
    /// Hangs on every attempt: the lab kills every worker that takes it.
    CrashAlways = 3,
}

impl Mode {
    /// The mode as it travels in a frame (an unknown number is a normal task).
    pub fn from_u32(mode: u32) -> Mode {
        match mode {
            1 => Mode::Slow,
            2 => Mode::CrashOnce,
            3 => Mode::CrashAlways,
            _ => Mode::Normal,
        }
    }
}

pub const SLOW: Duration = Duration::from_millis(300);
/// A hanging task gives up hanging after this long, so a lab whose killer failed still ends.
pub const HANG: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
pub struct Task {
    pub x: u64,
    pub rounds: u32,
    pub mode: Mode,
}

impl Task {
    pub fn tiny(x: u64) -> Task {
        Task { x, rounds: 1, mode: Mode::Normal }
    }
    pub fn heavy(x: u64) -> Task {
        Task { x, rounds: HEAVY_ROUNDS, mode: Mode::Normal }
    }
    pub fn expected(&self) -> u64 {
        work(self.x, self.rounds)
    }
}

/// True when a task in `mode` hangs on attempt `attempt` (the worker decides; the killer agrees).
pub fn hangs(mode: Mode, attempt: u32) -> bool {
    mode == Mode::CrashAlways || (mode == Mode::CrashOnce && attempt == 1)
}
