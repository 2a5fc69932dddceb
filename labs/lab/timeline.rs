//! What the observer of `lab check` saw: every process below it, read from /proc every
//! 2 ms (parents, programs, states, groups, threads, CPU time), and how each process that
//! the observer reaped itself ended (its waitpid status and its last /proc/PID/stat).

use procfs::process::Process;
use proclab::{clock, Status};
use std::collections::{BTreeMap, HashSet};

/// One process below the observer, as the kernel reported it over time.
#[derive(Clone, Debug)]
pub struct Proc {
    pub pid: i32,
    /// Every parent it had, first to last (an orphan's list grows when it is adopted).
    pub ppids: Vec<i32>,
    /// Every program it ran (/proc/PID/exe), first to last: a successful exec adds one.
    pub exes: Vec<String>,
    pub comm: String,
    pub pgid: i32,
    pub sid: i32,
    /// The state letter of the last sample (`Z` for a zombie).
    pub state: char,
    pub born_ns: u64,
    pub last_ns: u64,
    /// The longest stretch it spent as a zombie of a parent other than the observer.
    pub zombie_ns: u64,
    z_since: Option<u64>,
    pub threads_max: i64,
    /// CPU time in clock ticks and minor faults, as of the last sample.
    pub utime: u64,
    pub stime: u64,
    pub minflt: u64,
    starttime: u64,
    /// When it vanished from /proc without the observer reaping it: its parent reaped it.
    pub gone_ns: Option<u64>,
    /// How it ended, if the observer reaped it (it was the observer's child or orphan).
    pub end: Option<End>,
}

/// What the observer learned when it reaped a process.
#[derive(Clone, Copy, Debug)]
pub struct End {
    pub status: Status,
    pub at_ns: u64,
    /// The zombie's own CPU ticks, and the CPU ticks and page faults of the children it
    /// reaped.
    pub utime: u64,
    pub cutime: u64,
    pub cminflt: u64,
    /// Bytes read and written (/proc/PID/io), its own and those of the children it reaped.
    pub rchar: u64,
    pub wchar: u64,
}

impl Proc {
    pub fn ppid(&self) -> i32 {
        self.ppids.last().copied().unwrap_or(0)
    }
    pub fn first_ppid(&self) -> i32 {
        self.ppids.first().copied().unwrap_or(0)
    }
    /// True while it runs (not a zombie, not gone, not reaped).
    pub fn running(&self) -> bool {
        self.state != 'Z' && self.gone_ns.is_none() && self.end.is_none()
    }
    /// When it stopped running: reaped, gone, or first seen as a zombie.
    pub fn ended_ns(&self) -> Option<u64> {
        self.end.map(|e| e.at_ns).or(self.gone_ns).or(self.z_since)
    }
    /// True if the process `parent` reaped it while it was still its parent.
    pub fn reaped_by(&self, parent: i32) -> bool {
        self.gone_ns.is_some() && self.ppid() == parent
    }
}

/// Every process seen below the observer, by pid.
pub struct Timeline {
    pub me: i32,
    pub procs: BTreeMap<i32, Proc>,
}

impl Timeline {
    pub fn new(me: i32) -> Timeline {
        Timeline { me, procs: BTreeMap::new() }
    }
    pub fn get(&self, pid: i32) -> Option<&Proc> {
        self.procs.get(&pid)
    }
    /// Every process whose first parent was `pid` (its children, adopted or not since).
    pub fn children_of(&self, pid: i32) -> Vec<&Proc> {
        self.procs.values().filter(|p| p.first_ppid() == pid).collect()
    }
    /// `pid`'s descendants ever seen, by first parent.
    pub fn descendants_of(&self, pid: i32) -> Vec<&Proc> {
        let mut out: Vec<&Proc> = Vec::new();
        let mut todo = vec![pid];
        while let Some(p) = todo.pop() {
            for c in self.children_of(p) {
                todo.push(c.pid);
                out.push(c);
            }
        }
        out
    }
    /// The processes running now below the observer.
    pub fn running(&self) -> Vec<&Proc> {
        self.procs.values().filter(|p| p.running()).collect()
    }

    /// One sample: walk the tree below the observer through /proc/PID/task/*/children,
    /// update every process found, and mark those that vanished.
    pub fn sample(&mut self) {
        let now = clock::lab_ns();
        let mut seen = HashSet::new();
        let mut todo = vec![self.me];
        while let Some(p) = todo.pop() {
            for c in children(p) {
                if seen.insert(c) {
                    self.update(c, now);
                    todo.push(c);
                }
            }
        }
        // A process not found by the walk may be between parents: look at it directly.
        let missing: Vec<i32> = self
            .procs
            .values()
            .filter(|p| {
                p.gone_ns.is_none() && p.end.is_none() && !seen.contains(&p.pid)
            })
            .map(|p| p.pid)
            .collect();
        for pid in missing {
            let same = stat(pid)
                .is_some_and(|s| s.starttime == self.procs[&pid].starttime);
            if same {
                self.update(pid, now);
            } else if let Some(p) = self.procs.get_mut(&pid) {
                p.gone_ns = Some(now);
                proclab::cleanup::forget(nix::unistd::Pid::from_raw(pid));
            }
        }
    }

    fn update(&mut self, pid: i32, now: u64) {
        let Some(s) = stat(pid) else { return };
        let me = self.me;
        if s.ppid == me && s.comm == "shm-janitor" {
            return; // the checker's own (proclab::cleanup::track_shm), not the program's
        }
        let p = self.procs.entry(pid).or_insert_with(|| {
            proclab::cleanup::track(nix::unistd::Pid::from_raw(pid));
            Proc {
                pid,
                ppids: Vec::new(),
                exes: Vec::new(),
                comm: String::new(),
                pgid: 0,
                sid: 0,
                state: '?',
                born_ns: now,
                last_ns: now,
                zombie_ns: 0,
                z_since: None,
                threads_max: 0,
                utime: 0,
                stime: 0,
                minflt: 0,
                starttime: s.starttime,
                gone_ns: None,
                end: None,
            }
        });
        if p.starttime != s.starttime {
            return; // the pid was reused by a process that is not ours
        }
        if p.ppids.last() != Some(&s.ppid) {
            p.ppids.push(s.ppid);
        }
        if let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) {
            let exe = exe.display().to_string();
            if p.exes.last() != Some(&exe) {
                p.exes.push(exe);
            }
        }
        (p.comm, p.pgid, p.sid, p.state) = (s.comm, s.pgrp, s.session, s.state);
        p.last_ns = now;
        p.threads_max = p.threads_max.max(s.num_threads);
        (p.utime, p.stime, p.minflt) = (s.utime, s.stime, s.minflt);
        if s.state == 'Z' && s.ppid != me {
            let since = *p.z_since.get_or_insert(now);
            p.zombie_ns = p.zombie_ns.max(now - since);
        } else if s.state != 'Z' {
            p.z_since = None;
        }
    }

    /// Record how `pid` ended: its waitpid `status`, read after its last /proc/PID/stat.
    pub fn ended(
        &mut self,
        pid: i32,
        status: Status,
        last: Option<procfs::process::Stat>,
        io: (u64, u64),
    ) {
        let now = clock::lab_ns();
        self.update(pid, now);
        if let Some(p) = self.procs.get_mut(&pid) {
            let (utime, cutime, cminflt) = last
                .map(|s| (s.utime, s.cutime.max(0) as u64, s.cminflt))
                .unwrap_or((p.utime, 0, 0));
            let (rchar, wchar) = io;
            p.end = Some(End {
                status,
                at_ns: now,
                utime,
                cutime,
                cminflt,
                rchar,
                wchar,
            });
            p.state = 'Z';
        }
        proclab::cleanup::forget(nix::unistd::Pid::from_raw(pid));
    }
}

/// /proc/PID/stat, or None once the process is gone.
pub fn stat(pid: i32) -> Option<procfs::process::Stat> {
    Process::new(pid).ok()?.stat().ok()
}

/// Bytes read and written by `pid` (rchar, wchar of /proc/PID/io), 0 if unreadable.
pub fn io(pid: i32) -> (u64, u64) {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("rchar:"), field("wchar:"))
}

/// The children of every thread of `pid` (/proc/PID/task/TID/children).
fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        let path = t.path().join("children");
        if let Ok(text) = std::fs::read_to_string(path) {
            out.extend(
                text.split_whitespace().filter_map(|w| w.parse::<i32>().ok()),
            );
        }
    }
    out
}
