//! What became of a member of the family, as the observer reads it: dead (the wait
//! status says how; the observer, a subreaper, reaps its orphans) or alive (/proc says
//! its parent, state and group).

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpid, Pid};
use proclab::{cleanup, die, observe, procfacts, Lab, State, Status};
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::fmt;
use std::time::Duration;

/// Generous bound for a death the observer waits for (it comes within milliseconds).
const TIMEOUT: Duration = Duration::from_secs(10);

/// What the observer saw of a process.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fate {
    /// Still running: its parent, state and process group from /proc/PID/stat.
    Alive { ppid: i32, state: State, pgrp: i32 },
    /// Ended and reaped by the observer: the wait status says how.
    Dead(Status),
    /// Neither our child nor alive (someone else reaps it).
    Gone,
}

// ANCHOR: look
/// Dead or alive? A dead child of ours (re-parented to us, the subreaper) is
/// reaped and its wait status says how it ended; /proc describes a live one.
pub fn look(pid: Pid) -> Fate {
    // /proc first: a child that ends after this read is still reaped below.
    let facts = procfacts::facts(pid.as_raw());
    // WNOHANG: reap it if it has ended, return at once if not.
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => {}
        Ok(status) => {
            cleanup::forget(pid); // reaped: its pid may be reused
            return Fate::Dead(Status::from(status));
        }
        Err(e) => die("waitpid", e),
    }
    match facts {
        Some(f) if f.state != 'Z' => {
            Fate::Alive { ppid: f.ppid, state: State(f.state), pgrp: f.pgrp }
        }
        _ => Fate::Gone, // gone, or a zombie of another parent
    }
}
// ANCHOR_END: look

impl Fate {
    pub fn alive_under(&self, observer: Pid) -> bool {
        matches!(self, Fate::Alive { ppid, .. } if *ppid == observer.as_raw())
    }
    pub fn alive_with_new_parent(&self, old_parent: Pid) -> bool {
        matches!(self, Fate::Alive { ppid, .. } if *ppid != old_parent.as_raw())
    }
    pub fn signal(&self) -> Option<Signal> {
        match self {
            Fate::Dead(s) => s.signal(),
            _ => None,
        }
    }
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Fate::Dead(s) => s.code(),
            _ => None,
        }
    }
    pub fn pgrp(&self) -> Option<i32> {
        match self {
            Fate::Alive { pgrp, .. } => Some(*pgrp),
            _ => None,
        }
    }
}

impl fmt::Display for Fate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fate::Alive { state, pgrp, .. } => {
                write!(f, "ALIVE, {state}, group {pgrp}")
            }
            Fate::Dead(s) => write!(f, "dead: reaped by the observer, {s}"),
            Fate::Gone => write!(f, "gone, not ours to reap"),
        }
    }
}

/// `{"alive": true, "ppid": 4211, "state": "S", "pgrp": 4200}`, or
/// `{"alive": false, "status": {"signal": "SIGTERM", ...}}`.
impl Serialize for Fate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("alive", &matches!(self, Fate::Alive { .. }))?;
        match self {
            Fate::Alive { ppid, state, pgrp } => {
                m.serialize_entry("ppid", ppid)?;
                m.serialize_entry("state", state)?;
                m.serialize_entry("pgrp", pgrp)?;
            }
            Fate::Dead(status) => m.serialize_entry("status", status)?,
            Fate::Gone => m.serialize_entry("gone", &true)?,
        }
        m.end()
    }
}

/// Wait (bounded, in lab time) until none of `pids` is alive; their fates, in order.
pub fn await_deaths(pids: &[Pid]) -> Vec<Fate> {
    let mut fates: Vec<Option<Fate>> = vec![None; pids.len()];
    procfacts::poll_until(TIMEOUT, || {
        for (fate, &pid) in fates.iter_mut().zip(pids) {
            if fate.is_none() {
                *fate =
                    Some(look(pid)).filter(|f| !matches!(f, Fate::Alive { .. }));
            }
        }
        fates.iter().all(Option::is_some).then_some(())
    });
    fates.iter().zip(pids).map(|(f, &pid)| f.unwrap_or_else(|| look(pid))).collect()
}

/// Wait (bounded) for the parent the observer has just signalled, reap it, and say how
/// it ended: the parent is `signalled[0]`, and the lab sent `sent` to all of them.
pub fn reap_parent(
    lab: &mut Lab,
    way: &str,
    signalled: &[Pid],
    sent: Signal,
) -> Status {
    let parent = signalled[0];
    let status = match await_deaths(&[parent])[0] {
        Fate::Dead(s) => s,
        _ => Status(Ok(WaitStatus::StillAlive)),
    };
    observe!(
        lab,
        "parent_death",
        "parent {pid}: waitpid says {status}",
        scenario = way,
        pid = parent.as_raw(),
        sent = sent.as_str(),
        signalled = signalled.iter().map(|p| p.as_raw()).collect::<Vec<_>>(),
        status
    );
    status
}

/// Say what became of each of `pids` (their `fates`), members of `role` whose parent
/// was `parent`.
pub fn observe(
    lab: &mut Lab,
    way: &str,
    role: &str,
    parent: Pid,
    pids: &[Pid],
    fates: &[Fate],
) {
    let me = getpid().as_raw();
    for (&pid, &fate) in pids.iter().zip(fates) {
        let note = match fate {
            Fate::Alive { ppid, .. } if ppid == me => {
                format!(": its ppid changed {parent} -> {ppid}, the observer (our subreaper)")
            }
            Fate::Alive { ppid, .. } => {
                format!(": its ppid changed {parent} -> {ppid}")
            }
            _ => String::new(),
        };
        observe!(
            lab,
            "fate",
            "{role} {pid} is {fate}{note}",
            scenario = way,
            role,
            pid = pid.as_raw(),
            parent = parent.as_raw(),
            observer = me,
            fate
        );
    }
}

/// End a survivor with SIGTERM and reap it (bounded); true if it was alive and died of
/// that SIGTERM. The observer cleans up what the folklore says would have died.
pub fn end_survivor(lab: &mut Lab, way: &str, pid: Pid) -> bool {
    if !matches!(look(pid), Fate::Alive { .. }) {
        return false; // already ended (and reaped, if it was ours)
    }
    let _ = kill(pid, Signal::SIGTERM); // ESRCH: it ended in between; look says so
    let end = await_deaths(&[pid])[0];
    observe!(
        lab,
        "cleaned",
        "the observer sent SIGTERM to {pid}: {end}",
        scenario = way,
        pid = pid.as_raw(),
        sent = "SIGTERM",
        fate = end
    );
    end.signal() == Some(Signal::SIGTERM)
}

/// "alive, re-parented to the observer: 3", "killed by SIGTERM: 3", for the summary.
pub fn tally(fates: &[Fate]) -> String {
    let me = getpid();
    let mut parts: Vec<(String, usize)> = Vec::new();
    for f in fates {
        let what = match f {
            Fate::Alive { .. } if f.alive_under(me) => {
                "alive, re-parented to the observer".to_string()
            }
            Fate::Alive { .. } => "alive".to_string(),
            Fate::Dead(s) => s.to_string(),
            Fate::Gone => "gone".to_string(),
        };
        match parts.iter_mut().find(|(w, _)| *w == what) {
            Some((_, k)) => *k += 1,
            None => parts.push((what, 1)),
        }
    }
    let all: Vec<String> = parts.iter().map(|(w, k)| format!("{w}: {k}")).collect();
    all.join(", ")
}
