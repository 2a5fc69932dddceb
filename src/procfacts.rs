//! Process facts from the kernel's own accounting in /proc (via the `procfs` crate):
//! state, ppid, command, threads, memory, and the tree of a lab's descendants.

use crate::clock::Deadline;
use procfs::process::Process;
use std::time::Duration;

/// What /proc/PID/stat says of one process.
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    pub pid: i32,
    pub ppid: i32,
    /// R running, S sleeping, D disk sleep, Z zombie, T stopped, t traced, X dead, I idle.
    pub state: char,
    /// The command name (`/proc/PID/comm`, at most 15 bytes).
    pub comm: String,
    pub threads: i64,
    pub rss_kib: u64,
    /// Minor page faults (served without I/O, e.g. a copy-on-write copy).
    pub minflt: u64,
    pub pgrp: i32,
}

/// The facts of `pid`, or None if /proc has no such process.
pub fn facts(pid: i32) -> Option<Facts> {
    let stat = Process::new(pid).ok()?.stat().ok()?;
    Some(Facts {
        pid: stat.pid,
        ppid: stat.ppid,
        state: stat.state,
        comm: stat.comm,
        threads: stat.num_threads,
        rss_kib: stat.rss * (procfs::page_size() / 1024),
        minflt: stat.minflt,
        pgrp: stat.pgrp,
    })
}

/// The state letter of `pid` (`Z` for a zombie), or None once the pid is gone.
pub fn state(pid: i32) -> Option<char> {
    facts(pid).map(|f| f.state)
}

/// The parent pid of `pid` as the kernel records it.
pub fn ppid(pid: i32) -> Option<i32> {
    facts(pid).map(|f| f.ppid)
}

/// The command name of `pid` (`/proc/PID/comm`).
pub fn comm(pid: i32) -> Option<String> {
    facts(pid).map(|f| f.comm)
}

/// The path of the program `pid` runs (`/proc/PID/exe`); None for a zombie or a kernel thread.
pub fn exe(pid: i32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.display().to_string())
}

/// Where in the kernel `pid` sleeps (`/proc/PID/wchan`), e.g. `pipe_read`, `do_wait`.
pub fn wchan(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/wchan"))
        .ok()
        .filter(|s| !s.is_empty() && s != "0")
}

/// True while /proc/PID exists (a zombie still exists; a reaped process does not).
pub fn exists(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Proportional set size of `pid` in KiB, from /proc/PID/smaps_rollup (shared pages count
/// 1/N for each of the N processes mapping them).
pub fn pss_kib(pid: i32) -> Option<u64> {
    smaps_rollup_field(pid, "Pss:")
}

/// A `Name: value kB` field of /proc/PID/smaps_rollup, e.g. `Rss:`, `Pss:`, `Shared_Clean:`.
pub fn smaps_rollup_field(pid: i32, field: &str) -> Option<u64> {
    kib_field(&format!("/proc/{pid}/smaps_rollup"), field)
}

/// A `Name: value kB` field of /proc/PID/status, e.g. `VmRSS:`, `VmPTE:` (page tables).
pub fn status_field(pid: i32, field: &str) -> Option<u64> {
    kib_field(&format!("/proc/{pid}/status"), field)
}

/// A `Name: value kB` field of /proc/meminfo, e.g. `MemAvailable:`.
pub fn meminfo_field(field: &str) -> Option<u64> {
    kib_field("/proc/meminfo", field)
}

/// The number after `field` in a `Name: value kB` file of /proc.
fn kib_field(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// A process state as a fact: shows as `Z (zombie)`, serialises as `"Z"`. `?` when the
/// process was not found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State(pub char);

impl State {
    /// The state of `pid` now (`?` once it is gone from /proc).
    pub fn of(pid: i32) -> State {
        State(state(pid).unwrap_or('?'))
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&state_name(self.0))
    }
}

impl serde::Serialize for State {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// A state letter with its meaning: `Z (zombie)`.
pub fn state_name(state: char) -> String {
    let word = match state {
        'R' => "running",
        'S' => "sleeping",
        'D' => "disk sleep",
        'Z' => "zombie",
        'T' => "stopped",
        't' => "traced",
        'X' => "dead",
        'I' => "idle",
        '?' => "gone",
        _ => "unknown",
    };
    format!("{state} ({word})")
}

/// Poll `probe` every millisecond until it returns Some or `timeout` (lab time: `--step`
/// pauses do not count) passes. This watches /proc for a state change that no pipe or
/// wait can announce (a process entering state S, a zombie appearing); it is bounded and
/// never used to order two processes.
pub fn poll_until<T>(
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Deadline::after(timeout);
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if deadline.expired() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Wait (bounded) until `pid` is in one of `states`; returns the state seen. None at the
/// deadline, or at once when `pid` is gone from /proc (it can no longer get there).
pub fn wait_for_state(
    pid: i32,
    states: &[char],
    timeout: Duration,
) -> Option<char> {
    poll_until(timeout, || match state(pid) {
        Some(s) if states.contains(&s) => Some(Some(s)),
        Some(_) => None,
        None => Some(None),
    })
    .flatten()
}

/// One row of a process tree.
#[derive(Clone, Debug)]
pub struct TreeRow {
    pub pid: i32,
    pub ppid: i32,
    pub state: char,
    pub cmd: String,
    pub depth: usize,
}

fn command_line(f: &Facts) -> String {
    let args =
        Process::new(f.pid).ok().and_then(|p| p.cmdline().ok()).unwrap_or_default();
    if f.state == 'Z' {
        return format!("[{}] <defunct>", f.comm);
    }
    if args.is_empty() {
        return format!("[{}]", f.comm);
    }
    let full = args.join(" ");
    // Show the program's file name, not the long target/debug path.
    let first = args[0].rsplit('/').next().unwrap_or(&args[0]).to_string();
    let line = first.clone() + &full[args[0].len()..];
    // A process that renamed itself (prctl PR_SET_NAME: the harness's `shm-janitor`)
    // but kept the lab's arguments: show the name it chose first.
    if first.starts_with(&f.comm) || f.comm.starts_with(&first) {
        line
    } else {
        format!("{}: {line}", f.comm)
    }
}

/// `root` and all its descendants, depth-first, the way `ps -f --forest` shows them.
pub fn tree(root: i32) -> Vec<TreeRow> {
    let all: Vec<Facts> = procfs::process::all_processes()
        .map(|it| it.filter_map(|p| p.ok()).filter_map(|p| facts(p.pid)).collect())
        .unwrap_or_default();
    let mut rows = Vec::new();
    fn walk(all: &[Facts], f: &Facts, depth: usize, rows: &mut Vec<TreeRow>) {
        rows.push(TreeRow {
            pid: f.pid,
            ppid: f.ppid,
            state: f.state,
            cmd: command_line(f),
            depth,
        });
        let mut kids: Vec<&Facts> =
            all.iter().filter(|c| c.ppid == f.pid).collect();
        kids.sort_by_key(|c| c.pid);
        for k in kids {
            walk(all, k, depth + 1, rows);
        }
    }
    if let Some(r) = all.iter().find(|f| f.pid == root) {
        walk(&all, r, 0, &mut rows);
    }
    rows
}

/// Facts of this machine for recorded outputs: kernel release, CPU model, CPU count.
pub fn machine() -> (String, String, usize) {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    (kernel, model, cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_of_self() {
        let me = std::process::id() as i32;
        let f = facts(me).expect("own /proc entry");
        assert_eq!(f.pid, me);
        assert_eq!(f.ppid, nix::unistd::getppid().as_raw());
        assert!(f.threads >= 1);
        assert!(exists(me));
        assert_eq!(tree(me)[0].pid, me);
        assert!(status_field(me, "VmRSS:").is_some_and(|kib| kib > 0));
        assert!(meminfo_field("MemTotal:").is_some_and(|kib| kib > 0));
    }
}
