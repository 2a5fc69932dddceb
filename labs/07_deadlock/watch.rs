//! The lab's watch over its children: lab time (a `--step` pause does not count), waiting
//! for children under a watchdog, and `--hold-ms`, which keeps a deadlock in place for a
//! person to look at.

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use proclab::{cleanup, clock, observe, say, Lab, Status, Watchdog};
use std::time::Duration;

/// Lab time since `t0` (a `clock::lab_ns()`): time paused at a `--step` prompt is left out.
pub fn since(t0: u64) -> Duration {
    Duration::from_nanos(clock::lab_ns().saturating_sub(t0))
}

/// Wait for every child in `pids`, under a watchdog that kills them all at `deadline` (lab
/// time); reap them. Their statuses, and whether the watchdog fired.
pub fn reap_all<const N: usize>(
    pids: [Pid; N],
    deadline: Duration,
) -> ([Status; N], bool) {
    let dog = Watchdog::arm(deadline, move || {
        for p in pids {
            let _ = kill(p, Signal::SIGKILL); // a fix that does not finish is no fix
        }
    });
    let statuses = pids.map(|p| Status(waitpid(p, None)));
    let fired = dog.disarm();
    pids.into_iter().for_each(cleanup::forget);
    (statuses, fired)
}

/// With `--hold-ms`, leave the deadlock of `pid` in place for a person to inspect it with
/// `look` (PID stands for the pid).
pub fn hold(lab: &mut Lab, hold_ms: u64, pid: Pid, look: &str) {
    if hold_ms == 0 {
        return;
    }
    let look = look.replace("PID", &pid.to_string());
    say!("holding the deadlock {hold_ms} ms: try {look}");
    observe!(
        lab,
        "holding",
        "deadlock of {pid} held for {hold_ms} ms",
        pid = pid.as_raw(),
        hold_ms
    );
    std::thread::sleep(Duration::from_millis(hold_ms)); // only so a person can look
}
