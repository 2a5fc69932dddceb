//! What /proc says about the processes of a formation: PS and PORT from
//! /proc/PID/environ (the environment the manager gave at exec), ppid, group and
//! session from /proc/PID/stat, children from /proc/PID/task/TID/children.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use proclab::cleanup;

/// kill(2) of one process that the lab found in /proc or a PID file; never pid 0, -1
/// or 1 (the lab's group, every process, init), whatever a failed lookup left.
pub fn kill_one(pid: i32, sig: Signal) {
    if pid > 1 {
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

/// Own such a process: it is killed on every way out of the lab (cleanup::track).
pub fn own(pid: i32) {
    if pid > 1 {
        cleanup::track(Pid::from_raw(pid));
    }
}

/// `Some(4321)` as `4321`, None as `none`: for the human line of an observation.
pub fn or<T: std::fmt::Display>(value: &Option<T>, none: &str) -> String {
    value.as_ref().map_or(none.to_string(), |v| v.to_string())
}

/// The listening TCP sockets of `pid`'s network namespace, from /proc/PID/net/tcp:
/// (local address as the kernel prints it, `0100007F:1388`, and socket inode). The
/// kernel lists listening sockets first, so the reading stops at the first other one:
/// a machine with 100 000 sockets in TIME_WAIT takes a second to list them all.
pub fn listening(pid: i32) -> Vec<(String, String)> {
    use std::io::BufRead;
    let Ok(f) = std::fs::File::open(format!("/proc/{pid}/net/tcp")) else {
        return Vec::new();
    };
    let fields =
        |l: String| l.split_whitespace().map(String::from).collect::<Vec<_>>();
    let rows = std::io::BufReader::new(f).lines().skip(1).map_while(Result::ok);
    rows.map(fields)
        .take_while(|f| f.len() > 9 && f[3] == "0A") // 0A: TCP_LISTEN
        .map(|f| (f[1].clone(), f[9].clone()))
        .collect()
}

/// True when `pid` holds, among its open files (/proc/PID/fd), a socket that its
/// network namespace lists as listening on `port`.
pub fn holds_listener(pid: i32, port: u16) -> bool {
    let suffix = format!(":{port:04X}");
    let inodes: Vec<String> = listening(pid)
        .into_iter()
        .filter(|(addr, _)| addr.ends_with(&suffix))
        .map(|(_, inode)| format!("socket:[{inode}]"))
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|l| inodes.iter().any(|i| l.to_string_lossy() == *i))
    })
}

/// What /proc says of one process of a formation.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Seen {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    pub state: char,
    /// PS from its environment (web.1), PORT too.
    pub ps: String,
    pub port: Option<u16>,
}

/// The environment of `pid` as the kernel keeps it (/proc/PID/environ).
pub fn environ(pid: i32) -> Vec<(String, String)> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    raw.split(|&b| b == 0)
        .filter_map(|kv| {
            String::from_utf8_lossy(kv)
                .split_once('=')
                .map(|(k, v)| (k.into(), v.into()))
        })
        .collect()
}

/// /proc's view of `pid`, if it is alive.
pub fn seen(pid: i32) -> Option<Seen> {
    let stat = procfs::process::Process::new(pid).ok()?.stat().ok()?;
    let env = environ(pid);
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    Some(Seen {
        pid,
        ppid: stat.ppid,
        pgid: stat.pgrp,
        sid: stat.session,
        state: stat.state,
        ps: get("PS").unwrap_or_default(),
        port: get("PORT").and_then(|p| p.parse().ok()),
    })
}

/// The pids of `parent`'s children, from /proc/PID/task/TID/children (each thread's
/// own), or from a scan of every process's ppid where the kernel lacks that file.
fn child_pids(parent: i32) -> Vec<i32> {
    let tasks = std::fs::read_dir(format!("/proc/{parent}/task"))
        .map(|d| d.flatten().collect::<Vec<_>>());
    let lists: Vec<String> = tasks
        .unwrap_or_default()
        .iter()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .collect();
    if !lists.is_empty() {
        return lists
            .iter()
            .flat_map(|l| l.split_whitespace().filter_map(|p| p.parse().ok()))
            .collect();
    }
    let all = procfs::process::all_processes()
        .map(|it| it.filter_map(|p| p.ok()).map(|p| p.pid).collect());
    let all: Vec<i32> = all.unwrap_or_default();
    all.into_iter()
        .filter(|&p| proclab::procfacts::ppid(p) == Some(parent))
        .collect()
}

/// The live children of `parent` that carry a PS, by pid.
pub fn children(parent: i32) -> Vec<Seen> {
    let mut v: Vec<Seen> = child_pids(parent)
        .into_iter()
        .filter_map(seen)
        .filter(|s| s.ppid == parent && s.state != 'Z' && !s.ps.is_empty())
        .collect();
    v.sort_by_key(|s| s.pid);
    v
}

/// Live processes whose environment has FORMATION_RUN=`tag`.
pub fn tagged(tag: &str) -> Vec<i32> {
    let all: Vec<i32> = procfs::process::all_processes()
        .map(|it| it.filter_map(|p| p.ok()).map(|p| p.pid).collect())
        .unwrap_or_default();
    all.into_iter()
        .filter(|&p| proclab::procfacts::state(p).is_some_and(|s| s != 'Z'))
        .filter(|&p| {
            environ(p).iter().any(|(k, v)| k == "FORMATION_RUN" && v == tag)
        })
        .collect()
}

/// The pid /proc shows for process `ps` (web.1) among `seen`.
pub fn pid_of(seen: &[Seen], ps: &str) -> Option<i32> {
    seen.iter().find(|s| s.ps == ps).map(|s| s.pid)
}
