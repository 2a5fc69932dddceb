//! What the kernel shows of a deadlock, parsed from /proc: a worker's threads with their
//! state, wait channel and the futex each sleeps on, a kernel stack, /proc/locks as a
//! wait-for graph, and the bytes queued in a pipe.

use nix::unistd::Pid;
use proclab::procfacts;
use serde::Serialize;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// One thread of a process, as /proc/PID/task/TID shows it.
pub struct Task {
    pub tid: i32,
    pub name: String,
    pub state: char,
    pub wchan: String,
    /// The address it sleeps on in futex(2), if it does.
    pub futex: Option<u64>,
}

impl Task {
    /// The cells of its row in a table: tid, thread, state, wchan, futex address.
    pub fn cells(&self) -> Vec<String> {
        let (tid, state) = (self.tid.to_string(), self.state.to_string());
        let futex = self.futex.map_or("-".into(), |a| format!("{a:#x}"));
        vec![tid, self.name.clone(), state, self.wchan.clone(), futex]
    }
}

/// The threads of `pid` once `done` holds of them (or when `left` is over, lab time).
pub fn snapshot(
    pid: Pid,
    left: Duration,
    done: impl Fn(&[Task]) -> bool,
) -> Vec<Task> {
    procfacts::poll_until(left, || Some(tasks(pid)).filter(|t| done(t)))
        .unwrap_or_else(|| tasks(pid))
}

/// The kernel stack of thread `tid` of `pid`, after its path (empty unless root).
pub fn kernel_stack(pid: Pid, tid: i32) -> String {
    let path = format!("/proc/{pid}/task/{tid}/stack");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    format!("{path}:\n{text}")
}

/// Every thread of `pid`, sorted by tid.
fn tasks(pid: Pid) -> Vec<Task> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let tids = dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok());
    let mut rows: Vec<Task> = tids
        .filter_map(|tid: i32| {
            let f = procfacts::facts(tid)?;
            let wchan = procfacts::wchan(tid).unwrap_or_else(|| "-".into());
            let path = format!("/proc/{pid}/task/{tid}/syscall");
            let futex =
                std::fs::read_to_string(path).ok().and_then(|s| futex_wait(&s));
            Some(Task { tid, name: f.comm, state: f.state, wchan, futex })
        })
        .collect();
    rows.sort_by_key(|t| t.tid);
    rows
}

/// The address a thread waits on, from its /proc/PID/task/TID/syscall: the number of
/// the system call it is blocked in, then its arguments (`202 0x5581c0a2b2c0 0x89 0x2
/// ...` on x86-64: futex(addr, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, 2, ...)).
/// None if it is running or in any other call.
pub fn futex_wait(syscall: &str) -> Option<u64> {
    let mut f = syscall.split_whitespace();
    let nr: libc::c_long = f.next()?.parse().ok()?;
    let hex = |s: &str| u64::from_str_radix(s.strip_prefix("0x")?, 16).ok();
    let (addr, op) = (hex(f.next()?)?, hex(f.next()?)? as libc::c_int);
    let cmd = op & libc::FUTEX_CMD_MASK;
    let waits = cmd == libc::FUTEX_WAIT || cmd == libc::FUTEX_WAIT_BITSET;
    (nr == libc::SYS_futex && waits).then_some(addr)
}

/// One line of /proc/locks: a lock held, or (`blocked`) a request waiting for one.
#[derive(Clone, Debug, PartialEq)]
pub struct LockLine {
    pub blocked: bool,
    pub pid: i32,
    pub inode: u64,
    pub line: String,
}

/// `1: FLOCK  ADVISORY  WRITE 16712 00:1b:862 0 EOF`, or `1: -> FLOCK ...` for a waiter.
pub fn parse_lock_line(l: &str) -> Option<LockLine> {
    let t: Vec<&str> = l.split_whitespace().collect();
    let blocked = t.get(1) == Some(&"->");
    let f = if blocked { t.get(2..)? } else { t.get(1..)? };
    let pid = f.get(3)?.parse().ok()?;
    let inode = f.get(4)?.rsplit(':').next()?.parse().ok()?;
    Some(LockLine { blocked, pid, inode, line: l.trim().to_string() })
}

/// Every line of /proc/locks.
pub fn proc_locks() -> Vec<LockLine> {
    let text = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    text.lines().filter_map(parse_lock_line).collect()
}

/// An edge of a lock cycle: `pid` holds `holds` and waits for `waits_for`, held by
/// `held_by`.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct LockEdge {
    pub pid: i32,
    pub holds: &'static str,
    pub waits_for: &'static str,
    pub held_by: i32,
}

/// The wait-for cycle between `p1` and `p2` in `locks`, if it is there, over the files
/// `files` (inode, name): an edge each, and the lines that show it.
pub fn lock_cycle(
    locks: &[LockLine],
    [p1, p2]: [i32; 2],
    files: &[(u64, &'static str); 2],
) -> Option<(Vec<LockEdge>, Vec<String>)> {
    let name = |ino: u64| files.iter().find(|f| f.0 == ino).map(|f| f.1);
    let ours = |l: &&LockLine| name(l.inode).is_some();
    let holder = |ino| locks.iter().find(|l| !l.blocked && l.inode == ino);
    let mut edges = Vec::new();
    for (me, other) in [(p1, p2), (p2, p1)] {
        let mine = |blocked| {
            locks.iter().filter(ours).find(|l| l.blocked == blocked && l.pid == me)
        };
        let (waits, holds) = (mine(true)?, mine(false)?);
        if holder(waits.inode)?.pid != other {
            return None;
        }
        let (holds, waits_for) = (name(holds.inode)?, name(waits.inode)?);
        edges.push(LockEdge { pid: me, holds, waits_for, held_by: other });
    }
    let lines = locks.iter().filter(ours).filter(|l| l.pid == p1 || l.pid == p2);
    Some((edges, lines.map(|l| l.line.clone()).collect()))
}

/// Bytes waiting in a pipe, read through our copy of its read end (FIONREAD).
pub fn queued(fd: &OwnedFd) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into n.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_shows_the_address_of_a_futex_wait() {
        let wait = "202 0x5581c0a2b2c0 0x89 0x2 0x0 0x0 0xffffffff 0x7ffd 0x7f12";
        let nr = libc::SYS_futex;
        assert_eq!(
            futex_wait(&wait.replacen("202", &nr.to_string(), 1)),
            Some(0x5581c0a2b2c0)
        );
        let wake =
            format!("{nr} 0x5581c0a2b2c0 0x81 0x1 0x0 0x0 0x0 0x7ffd 0x7f12");
        assert_eq!(futex_wait(&wake), None, "FUTEX_WAKE_PRIVATE is no wait");
        assert_eq!(
            futex_wait("0 0x3 0x7fed 0x20000 0x0 0x0 0x0 0x7ffc 0x7fed"),
            None
        );
        assert_eq!(futex_wait("running"), None);
    }

    #[test]
    fn proc_locks_shows_a_cycle_of_two_flock_waiters() {
        let text = "1: FLOCK  ADVISORY  WRITE 12 00:1b:862 0 EOF\n\
                    1: -> FLOCK  ADVISORY  WRITE 11 00:1b:862 0 EOF\n\
                    2: FLOCK  ADVISORY  WRITE 11 00:1b:861 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 12 00:1b:861 0 EOF\n\
                    3: POSIX  ADVISORY  WRITE 99 00:1b:5 0 EOF";
        let locks: Vec<_> = text.lines().filter_map(parse_lock_line).collect();
        assert_eq!(locks.len(), 5);
        assert!(locks[1].blocked && locks[1].pid == 11 && locks[1].inode == 862);
        let files = [(861, "lock-a"), (862, "lock-b")];
        let (edges, lines) = lock_cycle(&locks, [11, 12], &files).expect("a cycle");
        let e = &edges[0];
        assert_eq!(
            (e.pid, e.holds, e.waits_for, e.held_by),
            (11, "lock-a", "lock-b", 12)
        );
        assert_eq!(lines.len(), 4, "the other process's lock is not shown");
        let no_wait: Vec<LockLine> =
            locks.iter().filter(|l| l.pid != 12 || !l.blocked).cloned().collect();
        assert_eq!(lock_cycle(&no_wait, [11, 12], &files), None);
    }
}
