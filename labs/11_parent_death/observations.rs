//! How the observer reports what it saw: the fate of a process, the observations, the
//! family table and the summary. Nothing here runs in a forked process.

use crate::args::Scenario;
use crate::readiness::Role;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::{getpid, Pid};
use proclab::procfacts::{self, state_name};
use proclab::{say_as, Lab, Status};
use serde_json::{json, Value};
use std::time::Duration;

/// What the observer saw of a process.
#[derive(Clone, Debug)]
pub enum Fate {
    /// Still running: its parent, state and process group from /proc/PID/stat.
    Alive { ppid: i32, state: char, pgrp: i32 },
    /// Ended and reaped by the observer: the wait status says how.
    Dead(WaitStatus),
    /// Neither our child nor in /proc (someone else reaped it).
    Gone,
}

impl Fate {
    pub fn alive_under(&self, observer: Pid) -> bool {
        matches!(self, Fate::Alive { ppid, .. } if *ppid == observer.as_raw())
    }
    pub fn alive_with_new_parent(&self, old_parent: Pid) -> bool {
        matches!(self, Fate::Alive { ppid, .. } if *ppid != old_parent.as_raw())
    }
    pub fn signal(&self) -> Option<Signal> {
        match self {
            Fate::Dead(WaitStatus::Signaled(_, sig, _)) => Some(*sig),
            _ => None,
        }
    }
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Fate::Dead(WaitStatus::Exited(_, code)) => Some(*code),
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

/// Section 0: the observer is a subreaper, and who PID 1 is here.
pub fn observe_subreaper(lab: &mut Lab, me: Pid, subreaper: bool) {
    let init = procfacts::comm(1).unwrap_or_else(|| "?".into());
    lab.observe(
        "subreaper",
        json!({"pid": me.as_raw(), "subreaper": subreaper, "pid1_comm": init}),
        format_args!("the observer {me} is a child subreaper: {subreaper}; PID 1 here is `{init}`"),
    );
}

/// The family table (role, pid, ppid, pgrp, state, wait channel), once every member has
/// settled in its wait, and one line of narration.
pub fn show_family(
    lab: &mut Lab,
    scenario: Scenario,
    parent: Pid,
    children: &[Pid],
    extra: Option<(Role, Pid)>,
) {
    let mut members = vec![(Role::Parent, parent)];
    members.extend(children.iter().map(|&c| (Role::Child, c)));
    members.extend(extra);
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|&(role, pid)| {
            let state = procfacts::wait_for_state(
                pid.as_raw(),
                &['S'],
                Duration::from_secs(2),
            ); // settled in its wait
            let wchan = procfacts::poll_until(Duration::from_secs(1), || {
                procfacts::wchan(pid.as_raw())
            });
            let f = procfacts::facts(pid.as_raw());
            vec![
                role.name().to_string(),
                pid.to_string(),
                f.as_ref().map_or("?".into(), |f| f.ppid.to_string()),
                f.as_ref().map_or("?".into(), |f| f.pgrp.to_string()),
                state.map_or("?".into(), |s| s.to_string()),
                wchan.unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    lab.table(
        "family",
        &["role", "pid", "ppid", "pgrp", "state", "waits in"],
        &rows,
    );
    say_as!(
        "observer",
        "{}'s family is up: 1 parent, {} children{}",
        scenario.name(),
        children.len(),
        extra.map_or(String::new(), |(r, p)| format!(", 1 {} ({p})", r.name()))
    );
}

/// How the parent ended, from the wait status the observer collected.
pub fn observe_parent(
    lab: &mut Lab,
    scenario: Scenario,
    pid: Pid,
    status: Option<WaitStatus>,
) {
    let signal = match status {
        Some(WaitStatus::Signaled(_, sig, _)) => Some(sig.as_str()),
        _ => None,
    };
    lab.observe(
        "parent_death",
        json!({"scenario": scenario.name(), "pid": pid.as_raw(), "signal": signal, "status": status.map(Status::from)}),
        format_args!("parent {pid}: waitpid -> {}", describe_status(status)),
    );
}

/// The fate of each of the parent's children, in fork order.
pub fn observe_children(
    lab: &mut Lab,
    scenario: Scenario,
    parent: Pid,
    children: &[Pid],
    fates: &[Fate],
) {
    for (&c, f) in children.iter().zip(fates) {
        observe_fate(lab, scenario, Role::Child, c, parent, f);
    }
}

/// What became of one member of the family: alive (ppid, state, group) or how it ended.
pub fn observe_fate(
    lab: &mut Lab,
    scenario: Scenario,
    role: Role,
    pid: Pid,
    parent: Pid,
    fate: &Fate,
) {
    let me = getpid();
    let mut fields = json!({
        "scenario": scenario.name(), "role": role.name(), "pid": pid.as_raw(),
        "parent": parent.as_raw(), "observer": me.as_raw(), "alive": matches!(fate, Fate::Alive { .. }),
    });
    let extra: Value;
    let text = match fate {
        Fate::Alive { ppid, state, pgrp } => {
            extra = json!({"how": "alive", "ppid": ppid, "state": state.to_string(), "pgrp": pgrp});
            let who = if *ppid == me.as_raw() {
                " (the observer, our subreaper)"
            } else {
                ""
            };
            format!(
                "{} {pid} is ALIVE, {}, group {pgrp}; its ppid changed {parent} -> {ppid}{who}",
                role.name(),
                state_name(*state)
            )
        }
        Fate::Dead(status) => {
            let signal = fate.signal().map(|s| s.as_str());
            let how = if signal.is_some() { "signal" } else { "exit" };
            extra = json!({"how": how, "signal": signal, "code": fate.exit_code(), "status": Status::from(*status)});
            format!(
                "{} {pid} is dead: reaped by the observer, {}",
                role.name(),
                describe_status(Some(*status))
            )
        }
        Fate::Gone => {
            extra = json!({"how": "gone"});
            format!("{} {pid} is gone and was not ours to reap", role.name())
        }
    };
    if let (Value::Object(f), Value::Object(e)) = (&mut fields, extra) {
        f.extend(e);
    }
    lab.observe("fate", fields, text);
}

/// A survivor the observer sent SIGTERM, and how it ended.
pub fn observe_cleaned(lab: &mut Lab, scenario: Scenario, pid: Pid, end: &Fate) {
    lab.observe(
        "cleaned",
        json!({"scenario": scenario.name(), "pid": pid.as_raw(), "signal": end.signal().map(|s| s.as_str())}),
        format_args!(
            "the observer sent SIGTERM to {pid}: {}",
            match end {
                Fate::Dead(st) => describe_status(Some(*st)),
                Fate::Alive { .. } => "still alive".into(),
                Fate::Gone => "gone, not ours to reap".into(),
            }
        ),
    );
}

fn describe_status(status: Option<WaitStatus>) -> String {
    match status {
        Some(s) => Status::from(s).to_string(),
        None => "still not ended".into(),
    }
}

/// The summary table and the verdict's claim: one row and one clause per scenario run.
pub struct Summary {
    observer: Pid,
    rows: Vec<Vec<String>>,
    claims: Vec<&'static str>,
}

impl Summary {
    pub fn new(observer: Pid) -> Summary {
        Summary { observer, rows: Vec::new(), claims: Vec::new() }
    }

    /// One scenario: how the parent died, what became of its children, whether they died with it.
    pub fn add(
        &mut self,
        scenario: &str,
        parent_death: &str,
        fates: &[Fate],
        died_with_it: bool,
        held: bool,
        lesson: &'static str,
    ) {
        let died = if died_with_it { "yes" } else { "NO" };
        self.rows.push(vec![
            scenario.into(),
            parent_death.into(),
            self.outcome(fates),
            died.into(),
        ]);
        self.claims.push(if held { lesson } else { "not shown on this run" });
    }

    /// "alive, re-parented to the observer: 3" / "killed by SIGTERM: 3" / "exited 0: 3".
    fn outcome(&self, fates: &[Fate]) -> String {
        let mut parts: Vec<(String, usize)> = Vec::new();
        for f in fates {
            let what = match f {
                Fate::Alive { .. } if f.alive_under(self.observer) => {
                    "alive, re-parented to the observer".to_string()
                }
                Fate::Alive { .. } => "alive".to_string(),
                Fate::Dead(WaitStatus::Signaled(_, sig, _)) => {
                    format!("killed by {}", sig.as_str())
                }
                Fate::Dead(s) => Status::from(*s).to_string(),
                Fate::Gone => "gone".to_string(),
            };
            match parts.iter_mut().find(|(w, _)| *w == what) {
                Some((_, k)) => *k += 1,
                None => parts.push((what, 1)),
            }
        }
        let all: Vec<String> =
            parts.iter().map(|(w, k)| format!("{w}: {k}")).collect();
        all.join(", ")
    }

    pub fn show(&self, lab: &mut Lab) {
        lab.table(
            "summary",
            &[
                "scenario",
                "how the parent died",
                "what became of the children",
                "died with it",
            ],
            &self.rows,
        );
    }

    /// What each way showed, as one observation before the verdict.
    pub fn report(&self, lab: &mut Lab) {
        let shown = self.claims.join("; ");
        proclab::observe!(lab, "ways", "what each way showed: {shown}", shown);
    }
}
