//! The deadlock lab's view from outside: the kernel's accounting, parsed. A worker's threads
//! with their state and wait channel, a kernel stack, /proc/locks as a wait-for graph, and
//! the bytes queued in a pipe.

use nix::unistd::Pid;
use proclab::procfacts;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// (tid, thread name, state, wchan) of one thread.
pub type Task = (i32, String, char, String);

/// The threads of `pid` once every one of `names` sleeps (bounded by `left`), and the
/// kernel stack of the first one (reading /proc/PID/task/TID/stack needs root).
pub fn snapshot(pid: Pid, names: &[String], left: Duration) -> (Vec<Task>, String) {
    let tasks = procfacts::poll_until(left, || {
        let t = task_rows(pid.as_raw());
        names.iter().all(|n| t.iter().any(|r| &r.1 == n && r.2 == 'S')).then_some(t)
    })
    .unwrap_or_else(|| task_rows(pid.as_raw()));
    let mut stack = String::new();
    if let Some(t) = tasks.iter().find(|t| names.first() == Some(&t.1)) {
        let path = format!("/proc/{pid}/task/{}/stack", t.0);
        stack = format!(
            "{path}:\n{}",
            std::fs::read_to_string(&path).unwrap_or_default()
        );
    }
    (tasks, stack)
}

/// Every thread of `pid`, sorted by tid.
fn task_rows(pid: i32) -> Vec<Task> {
    let mut rows: Vec<Task> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
                .filter_map(|tid| {
                    let f = procfacts::facts(tid)?;
                    Some((
                        tid,
                        f.comm,
                        f.state,
                        procfacts::wchan(tid).unwrap_or_else(|| "-".into()),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    rows.sort();
    rows
}

/// One line of /proc/locks: (blocked request?, kind, pid, inode, the line).
pub fn proc_locks() -> Vec<(bool, String, i32, u64, String)> {
    std::fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            let blocked = t.get(1) == Some(&"->");
            let f = if blocked { &t[2..] } else { &t[1..] };
            let pid = f.get(3)?.parse().ok()?;
            let inode = f.get(4)?.rsplit(':').next()?.parse().ok()?;
            Some((
                blocked,
                f.first()?.to_string(),
                pid,
                inode,
                l.trim().to_string(),
            ))
        })
        .collect()
}

/// (pid, lock it holds, lock it waits for, pid holding that lock).
pub type LockEdge = (i32, String, String, i32);

/// The wait-for cycle between `p1` and `p2` as /proc/locks shows it, if it is there:
/// (pid, lock it holds, lock it waits for, pid that holds it) per edge, and the lines.
pub fn lock_cycle(
    p1: i32,
    p2: i32,
    files: &[(u64, &str); 2],
) -> Option<(Vec<LockEdge>, Vec<String>)> {
    let locks = proc_locks();
    let name =
        |ino: u64| files.iter().find(|f| f.0 == ino).map(|f| f.1.to_string());
    let holder = |ino: u64| locks.iter().find(|l| !l.0 && l.3 == ino).map(|l| l.2);
    let mut edges = Vec::new();
    for (me, other) in [(p1, p2), (p2, p1)] {
        let waits =
            locks.iter().find(|l| l.0 && l.2 == me && name(l.3).is_some())?;
        let holds =
            locks.iter().find(|l| !l.0 && l.2 == me && name(l.3).is_some())?;
        if holder(waits.3) != Some(other) {
            return None;
        }
        edges.push((me, name(holds.3)?, name(waits.3)?, other));
    }
    let lines = locks
        .iter()
        .filter(|l| (l.2 == p1 || l.2 == p2) && name(l.3).is_some())
        .map(|l| l.4.clone())
        .collect();
    Some((edges, lines))
}

/// Bytes waiting in a pipe, read through our copy of its read end.
pub fn queued(fd: &OwnedFd) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    n
}
