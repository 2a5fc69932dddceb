//! The checks of the exercises, one file per lab. Each judges the program from outside:
//! the process tree and its states sampled from /proc, and the waitpid statuses of the
//! processes the observer reaps; what the program prints is never enough on its own.

pub mod zombie;

use crate::observer::Observer;
use crate::timeline::End;
use proclab::{check, observe, Lab};
use std::time::Duration;

/// Run the program with `args` until it ends (at most `limit`): its pid and how it ended,
/// or None if it was still running (then it is killed at the end of the check).
pub fn run_to_end(
    lab: &mut Lab,
    obs: &mut Observer,
    args: &[&str],
    limit: Duration,
) -> (i32, Option<End>) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let pid = obs.spawn(&args);
    let end = obs.end_of(pid, limit);
    match &end {
        Some(e) => observe!(
            lab,
            "ended",
            "your program ({pid}) ended: {status}",
            pid,
            status = e.status
        ),
        None => observe!(
            lab,
            "ended",
            "your program ({pid}) was still running after {secs} s",
            pid,
            secs = limit.as_secs()
        ),
    }
    (pid, end)
}

/// Check that the program ended by itself with status 0.
pub fn exited_cleanly(lab: &mut Lab, end: Option<End>) -> bool {
    let code = end.and_then(|e| e.status.code());
    let how = end.map_or("it did not end".to_string(), |e| e.status.to_string());
    check!(
        lab,
        "exited_cleanly",
        code == Some(0),
        "your program ends by itself with status 0 (it: {how})"
    )
}

/// Whether `pid` ignores signal `sig` now (the SigIgn mask of /proc/PID/status).
pub fn ignores(pid: i32, sig: i32) -> Option<bool> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mask = text.lines().find_map(|l| l.strip_prefix("SigIgn:"))?;
    let mask = u64::from_str_radix(mask.trim(), 16).ok()?;
    Some(mask & (1 << (sig - 1)) != 0)
}

/// Milliseconds of a lab-time interval in ns.
pub fn ms(ns: u64) -> u64 {
    ns / 1_000_000
}
