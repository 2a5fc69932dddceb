//! The checks of the exercises, one file per lab. Each judges the program from outside:
//! the process tree and its states sampled from /proc, and the waitpid statuses of the
//! processes the observer reaps; what the program prints is never enough on its own.

pub mod cow;
pub mod deadlock;
pub mod exec;
pub mod fork;
pub mod formation;
pub mod io_models;
pub mod orphan;
pub mod parent_death;
pub mod pid1;
pub mod pipe;
pub mod pool;
pub mod prefork;
pub mod shm;
pub mod tvp;
pub mod zombie;

use crate::observer::Observer;
use crate::timeline::{End, Proc};
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

/// The most of `procs` that were running at the same moment (from when each was first
/// seen to when it ended).
pub fn most_at_once(procs: &[&Proc]) -> usize {
    let mut events: Vec<(u64, i32)> = Vec::new();
    for p in procs {
        events.push((p.born_ns, 1));
        events.push((p.ended_ns().unwrap_or(u64::MAX), -1));
    }
    events.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        most = most.max(now);
    }
    most as usize
}

/// Where each thread of `pid` waits in the kernel (`/proc/PID/task/TID/wchan`), e.g.
/// `1234 pipe_read`; "running" for a thread on a CPU.
pub fn wchans(pid: i32) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        let w = std::fs::read_to_string(t.path().join("wchan")).unwrap_or_default();
        let w = if w.is_empty() || w == "0" { "running".into() } else { w };
        out.push(format!("{} {w}", t.file_name().to_string_lossy()));
    }
    out.sort();
    out
}

/// The programs below the observer still running, with where they wait: `1234 S
/// pipe_read`, for the explanation of a hang.
pub fn running_now(obs: &Observer) -> Vec<String> {
    let procs: Vec<(i32, char)> =
        obs.view(|tl| tl.running().iter().map(|p| (p.pid, p.state)).collect());
    let mut out = Vec::new();
    for (pid, state) in procs {
        for w in wchans(pid) {
            let (tid, wchan) = w.split_once(' ').unwrap_or(("", ""));
            let who = if tid == pid.to_string() {
                pid.to_string()
            } else {
                format!("{pid}/{tid}")
            };
            out.push(format!("{who} {state} {wchan}"));
        }
    }
    out
}

/// How a wait for a program's end turned out.
pub enum Outcome {
    Ended(End),
    /// Every process below the observer slept in the kernel without using the CPU for the
    /// quiet period: where each thread waited.
    Stuck(Vec<String>),
    /// Still running at the limit.
    Running(Vec<String>),
}

/// Wait until `pid` ends, at most `limit`; give up early when every process below the
/// observer has been blocked (no CPU time used, none sleeping on a timer) for `quiet`.
pub fn end_or_stuck(
    obs: &Observer,
    pid: i32,
    limit: Duration,
    quiet: Duration,
) -> Outcome {
    end_or_stuck_with(obs, pid, limit, quiet, |_| {})
}

/// [`end_or_stuck`], calling `each` with the timeline at every sample.
pub fn end_or_stuck_with(
    obs: &Observer,
    pid: i32,
    limit: Duration,
    quiet: Duration,
    mut each: impl FnMut(&crate::timeline::Timeline),
) -> Outcome {
    let mut last = (0u64, proclab::clock::lab_ns());
    let found = obs.until(limit, |tl| {
        each(tl);
        if let Some(e) = tl.get(pid).and_then(|p| p.end) {
            return Some(Outcome::Ended(e));
        }
        let running = tl.running();
        let cpu: u64 = running.iter().map(|p| p.utime + p.stime).sum();
        let now = proclab::clock::lab_ns();
        let sleeping = running.iter().any(|p| {
            p.state == 'R'
                || wchans(p.pid)
                    .iter()
                    .any(|w| w.contains("nanosleep") || w.contains("running"))
        });
        if cpu != last.0 || sleeping {
            last = (cpu, now);
        }
        (now - last.1 >= quiet.as_nanos() as u64)
            .then(|| Outcome::Stuck(Vec::new()))
    });
    match found {
        Some(Outcome::Stuck(_)) => Outcome::Stuck(running_now(obs)),
        Some(o) => o,
        None => Outcome::Running(running_now(obs)),
    }
}

/// "`k` of `n`", and when some are missing, that the checker reaped them: the children a
/// program leaves unreaped are its zombies when it exits, adopted and reaped by the checker.
pub fn reaped_text(k: usize, n: usize) -> String {
    if k < n {
        format!(
            "{k} of {n}; the others were still unreaped when your program ended, and the \
             checker, which adopts orphans, reaped them"
        )
    } else {
        format!("{k} of {n}")
    }
}
