//! Clocks: `CLOCK_MONOTONIC` in nanoseconds, and deadlines that do not count the time a
//! learner spends at a `--step` prompt.
//!
//! Every blocking wait in a lab has a deadline. With `--step` the lab stops at each
//! observation until Enter is pressed; that pause must never make a deadline expire, or
//! `--step` would change the verdict. [`Deadline`] measures *lab time*: the monotonic
//! clock minus the time spent paused (see [`pausing`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// `CLOCK_MONOTONIC` in ns: one clock for every CPU and process. Async-signal-safe.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Paused time already over, in ns.
static PAUSED_NS: AtomicU64 = AtomicU64::new(0);
/// When the pause in progress began (`now_ns`), or 0.
static PAUSE_SINCE: AtomicU64 = AtomicU64::new(0);

/// Time spent paused at `--step` prompts so far, including a pause in progress.
pub fn paused_ns() -> u64 {
    let since = PAUSE_SINCE.load(Ordering::SeqCst);
    let open = if since == 0 { 0 } else { now_ns().saturating_sub(since) };
    PAUSED_NS.load(Ordering::SeqCst) + open
}

/// Lab time in ns: the monotonic clock without the pauses.
pub fn lab_ns() -> u64 {
    now_ns().saturating_sub(paused_ns())
}

/// True while a `--step` prompt waits for Enter.
pub fn is_paused() -> bool {
    PAUSE_SINCE.load(Ordering::SeqCst) != 0
}

/// Run `f` (a prompt waiting for Enter) with the clock of every [`Deadline`] stopped.
pub fn pausing<T>(f: impl FnOnce() -> T) -> T {
    PAUSE_SINCE.store(now_ns().max(1), Ordering::SeqCst);
    let out = f();
    let since = PAUSE_SINCE.swap(0, Ordering::SeqCst);
    PAUSED_NS.fetch_add(now_ns().saturating_sub(since), Ordering::SeqCst);
    out
}

/// A point in lab time: `Deadline::after(d)` expires `d` of lab time from now, so time
/// spent paused at a `--step` prompt does not count. Copyable; cheap to query.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    at_ns: u64,
}

impl Deadline {
    /// `d` of lab time from now.
    pub fn after(d: Duration) -> Deadline {
        Deadline {
            at_ns: lab_ns()
                .saturating_add(d.as_nanos().min(u64::MAX as u128) as u64),
        }
    }

    /// True once the deadline has passed (never during a pause).
    pub fn expired(&self) -> bool {
        !is_paused() && lab_ns() >= self.at_ns
    }

    /// Lab time left, zero once expired. During a pause the clock stands still, so a
    /// waiter that sleeps for `remaining()` and then checks [`Deadline::expired`] again
    /// ends after the pause, never during it.
    pub fn remaining(&self) -> Duration {
        Duration::from_nanos(self.at_ns.saturating_sub(lab_ns()))
    }

    /// [`Deadline::remaining`] in whole milliseconds for `poll(2)`, rounded up, at most
    /// `cap_ms` (so a waiter wakes now and then to see whether a pause moved the end).
    pub fn poll_ms(&self, cap_ms: i32) -> i32 {
        let ms = self.remaining().as_nanos().div_ceil(1_000_000);
        ms.min(cap_ms.max(0) as u128) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_does_not_count_against_a_deadline() {
        let d = Deadline::after(Duration::from_millis(30));
        pausing(|| std::thread::sleep(Duration::from_millis(60)));
        assert!(!d.expired(), "60 ms paused must not use up a 30 ms deadline");
        std::thread::sleep(Duration::from_millis(40));
        assert!(d.expired());
        assert!(paused_ns() >= 60_000_000);
    }
}
