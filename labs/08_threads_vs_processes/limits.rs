//! Section 6: how many tasks this machine allows, read, never tested by exhausting
//! them. Threads are tasks too: they count against the same limits as processes.

use nix::sys::resource::{getrlimit, Resource};
use proclab::{observe, Lab, OrDie};
use std::fmt;

pub fn run(lab: &mut Lab) {
    // ANCHOR: limits
    // Tasks per user: threads count too.
    let (soft, hard) = getrlimit(Resource::RLIMIT_NPROC).or_die("getrlimit");
    // Tasks system-wide, and the largest pid (or thread id) + 1.
    let threads_max = number("/proc/sys/kernel/threads-max");
    let pid_max = number("/proc/sys/kernel/pid_max");
    // The 4th field of "0.20 0.18 0.12 1/123 4567": 123 tasks exist now.
    let tasks_now = std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| {
        s.split_whitespace().nth(3)?.split('/').nth(1)?.parse::<u64>().ok()
    });
    // ANCHOR_END: limits
    observe!(
        lab,
        "limits",
        "RLIMIT_NPROC {rlimit_nproc_soft} (hard {rlimit_nproc_hard}), threads-max \
         {threads_max}, pid_max {pid_max}, tasks alive now {tasks_now}",
        rlimit_nproc_soft = Limit(Some(soft)),
        rlimit_nproc_hard = Limit(Some(hard)),
        threads_max = Limit(threads_max),
        pid_max = Limit(pid_max),
        tasks_now = Limit(tasks_now)
    );
}

fn number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A limit as a fact: shows `unlimited` for RLIM_INFINITY and `?` when it could not be
/// read; serialises as the number (or null).
struct Limit(Option<u64>);

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(libc::RLIM_INFINITY) => f.write_str("unlimited"),
            Some(v) => write!(f, "{v}"),
            None => f.write_str("?"),
        }
    }
}

impl serde::Serialize for Limit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
