//! Checks of the threads-versus-processes exercises (chapter 8).

use super::exited_cleanly;
use crate::observer::Observer;
use proclab::{check, observe, Lab};
use std::collections::BTreeMap;
use std::time::Duration;

/// CPU ticks (utime + stime) of each thread of `pid` but the main one.
fn thread_cpu(pid: i32) -> Vec<(i32, u64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let tids = tasks
        .flatten()
        .filter_map(|t| t.file_name().to_string_lossy().parse().ok());
    let stat = |tid: i32| {
        let s = procfs::process::Process::new(pid)
            .ok()?
            .task_from_tid(tid)
            .ok()?
            .stat()
            .ok()?;
        Some((tid, s.utime + s.stime))
    };
    tids.filter(|&t| t != pid).filter_map(stat).collect()
}

/// tvp-threads: four worker threads at once in the program's own process, each using the
/// CPU, no child process, and a right sum (exit 0).
pub fn threads(lab: &mut Lab, obs: &mut Observer) {
    let n = 40_000_000u64;
    let pid = obs.spawn(&[n.to_string()]);
    let (mut cpu, mut most) = (BTreeMap::new(), 0usize);
    let end = obs.until(Duration::from_secs(60), |tl| {
        let now = thread_cpu(pid);
        most = most.max(now.len());
        for (tid, t) in now {
            cpu.insert(tid, t);
        }
        tl.get(pid).and_then(|p| p.end)
    });
    let children = obs.view(|tl| tl.children_of(pid).len());
    let busy = cpu.values().filter(|&&t| t >= 2).count();
    let ticks: Vec<u64> = cpu.values().copied().collect();
    observe!(lab, "threads", "your program ran {workers} threads besides main (at most {most} at once), CPU ticks {ticks:?}; {children} child processes", workers = cpu.len(), most, ticks, children);
    check!(
        lab,
        "together",
        most >= 4,
        "four worker threads run at once in your process (seen: at most {most})"
    );
    check!(
        lab,
        "spread",
        busy >= 4,
        "each worker thread uses the CPU (seen: {busy} with 20 ms or more)"
    );
    check!(
        lab,
        "no_children",
        children == 0,
        "no child process is forked (seen: {children})"
    );
    exited_cleanly(lab, end);
}
