//! How the [`Timeline`] reads a run's events: the facts named in the doc of
//! [`super::timeline`], event by event, into lanes, marks, trees and shares.

use super::timeline::{
    fmt_t, Lane, Mark, MarkKind, Panel, Share, Timeline, Tree, TreeRow,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// More lanes than this in one section are grouped when they read alike.
const MAX_LANES: usize = 10;

#[derive(Default)]
struct Proc {
    role: String,
    parent: Option<i32>,
    comm: Option<String>,
    cmd: String,
    state: Option<char>,
    /// It has had a mark: a lane of a later section continues from before it.
    seen: bool,
    ended: bool,
}

#[derive(Default)]
struct Builder {
    t: Timeline,
    procs: BTreeMap<i32, Proc>,
    panel: Panel,
    /// The column of the event being read, once it has a mark.
    col: Option<usize>,
    t_us: u64,
    /// Events read so far, and the one after which the last tree was drawn from ppids.
    read: usize,
    drawn_after: usize,
}

/// The timeline of a run from its events.
pub(super) fn read(events: &[Value]) -> Timeline {
    let mut b = Builder::default();
    for e in events {
        if e["event"] == "section" {
            b.t.lab_pid = e["pid"].as_i64().unwrap_or(0) as i32;
            b.t.lab = e["lab"].as_str().unwrap_or("").to_string();
            break;
        }
    }
    let lab = b.t.lab_pid;
    b.procs.insert(lab, Proc { role: "lab".into(), ..Proc::default() });
    // Within a section, events in the order things happened: `at_us` if a fact was
    // reported later than it happened, else when it was reported (`t_us`).
    let when = |e: &Value| e["at_us"].as_u64().or(e["t_us"].as_u64()).unwrap_or(0);
    let mut ordered: Vec<&Value> = Vec::new();
    for chunk in events.chunk_by(|_, e| e["event"] != "section") {
        let mut chunk: Vec<&Value> = chunk.iter().collect();
        let heading = (chunk[0]["event"] == "section") as usize;
        chunk[heading..].sort_by_key(|e| when(e));
        ordered.extend(chunk);
    }
    for e in ordered {
        b.t_us = when(e);
        b.col = None;
        b.read += 1;
        match (e["event"].as_str(), e.as_object()) {
            (Some("section"), _) => {
                b.close_panel();
                b.panel.title = e["title"].as_str().unwrap_or("").to_string();
            }
            (Some("observation" | "check"), Some(o)) => b.observation(o),
            _ => {}
        }
    }
    b.close_panel();
    // Which lanes are seen again in a later section (the lab always lives on).
    let mut later: std::collections::HashSet<i32> = [lab].into();
    for p in b.t.panels.iter_mut().rev() {
        for l in &mut p.lanes {
            l.after = later.contains(&l.pid);
        }
        later.extend(p.lanes.iter().map(|l| l.pid));
    }
    b.t
}

fn as_pid(v: &Value) -> Option<i32> {
    v.as_i64().filter(|&p| p > 0 && p < 1 << 22).map(|p| p as i32)
}

fn pid_list(v: &Value) -> Vec<i32> {
    v.as_array().map(|a| a.iter().filter_map(as_pid).collect()).unwrap_or_default()
}

/// `{"exited": 7}` -> "exit 7", `{"signal": "SIGKILL"}` -> "SIGKILL"; the Debug form
/// `Exited(Pid(4344), 0)` of labs not yet converted is read too.
pub fn status_text(v: &Value) -> Option<String> {
    if let Some(c) = v.get("exited").and_then(Value::as_i64) {
        return Some(format!("exit {c}"));
    }
    if let Some(s) = v.get("signal").and_then(Value::as_str) {
        return Some(s.to_string());
    }
    let s = v.as_str()?;
    let inner = s.strip_suffix(')')?;
    let (what, rest) = inner.split_once('(')?;
    let code = rest.split(", ").nth(1)?;
    match what {
        "Exited" => Some(format!("exit {code}")),
        "Signaled" => Some(code.to_string()),
        _ => None,
    }
}

/// The pid inside the Debug form `Exited(Pid(4344), 0)`.
fn debug_status_pid(v: &Value) -> Option<i32> {
    let s = v.as_str()?;
    let rest = s.split_once("(Pid(")?.1;
    rest.split(')').next()?.parse().ok()
}

/// The role a process plays, from the name of the fact that names it.
fn role_of_key(key: &str) -> &str {
    match key {
        "workers" | "new_workers" => "worker",
        "pid" | "pids" | "new_pid" | "answered_by" | "observer" => "",
        k => k.strip_suffix("_pid").unwrap_or(k),
    }
}

/// A `*_pid` fact that names a process of the lab's own numbering: not `lab_pid`, and
/// not `ns_*` (a pid inside a PID namespace, such as `ns_pid`, another numbering).
fn host_pid_key(k: &str) -> bool {
    k.ends_with("_pid") && k != "lab_pid" && !k.starts_with("ns_")
}

const SUBJECTS: &[&str] = &["pid", "orphan", "child", "holder"];
const MENTIONS: &[&str] = &[
    "parent",
    "victim",
    "survivor",
    "waiter",
    "refused",
    "observer",
    "answered_by",
];

impl Builder {
    fn proc(&mut self, pid: i32) -> &mut Proc {
        self.procs.entry(pid).or_default()
    }

    fn set_role(&mut self, pid: i32, role: &str) {
        let p = self.proc(pid);
        if p.role.is_empty() && !role.is_empty() {
            p.role = role.chars().take(10).collect();
        }
    }

    /// Put a mark on `pid`'s lane in the column of the event being read.
    fn mark(&mut self, pid: i32, kind: MarkKind, text: &str, from: Option<i32>) {
        let lab = self.t.lab_pid;
        let (ended, state) = {
            let p = self.proc(pid);
            (p.ended, p.state)
        };
        if ended
            || (pid == lab && !matches!(kind, MarkKind::Signal | MarkKind::Exec))
        {
            return;
        }
        // PID 1 and 2 (init, kthreadd) are never a lab's own process; such small numbers
        // are pids inside a PID namespace, in another numbering than the lanes'.
        if pid <= 2 {
            return;
        }
        let li = match self.panel.lanes.iter().position(|l| l.pid == pid) {
            Some(i) => i,
            None => {
                let known = self.procs.get(&pid).is_some_and(|p| p.seen);
                self.panel.lanes.push(Lane {
                    pid,
                    role: String::new(),
                    marks: Vec::new(),
                    before: known,
                    state_before: if known { state } else { None },
                    after: false,
                    more: Vec::new(),
                });
                self.panel.lanes.len() - 1
            }
        };
        let lane = &self.panel.lanes[li];
        let repeat = match kind {
            // The same state again with nothing between is drawn once.
            MarkKind::State(_) => lane.marks.last().is_some_and(|m| m.kind == kind),
            MarkKind::Seen => !lane.marks.is_empty() || lane.before,
            _ => false,
        };
        if repeat {
            return;
        }
        let col = *self.col.get_or_insert_with(|| {
            self.panel.times.push(self.t_us);
            self.panel.times.len() - 1
        });
        let text: String = text.chars().take(24).collect();
        self.panel.lanes[li].marks.push(Mark {
            col,
            kind: kind.clone(),
            text,
            from,
        });
        let p = self.proc(pid);
        p.seen = true;
        if kind == MarkKind::Fork {
            p.parent = p.parent.or(from);
        }
        match kind {
            MarkKind::State(c) => p.state = Some(c),
            MarkKind::Reaped | MarkKind::Gone => p.ended = true,
            _ => {}
        }
    }

    fn state(&mut self, pid: i32, v: &Value) {
        if let Some(c) = v.as_str().and_then(|s| s.chars().next()) {
            if c.is_ascii_uppercase() {
                self.mark(pid, MarkKind::State(c), &c.to_string(), None);
            }
        }
    }

    fn parent_is(&mut self, pid: i32, ppid: i32, o: &Map<String, Value>) {
        let old = self.proc(pid).parent.replace(ppid);
        if old.is_some_and(|o| o != ppid) {
            self.mark(
                pid,
                MarkKind::Reparent,
                &format!("ppid->{ppid}"),
                Some(ppid),
            );
            let comm = o.get("adopter_comm").and_then(Value::as_str).unwrap_or("");
            if self.proc(ppid).cmd.is_empty() {
                self.proc(ppid).cmd = comm.to_string();
            }
            self.snapshot();
        }
    }

    /// `pid` ended and was reaped, with `status`; `o` may name the reaper.
    fn reaped(&mut self, pid: i32, status: &Value, o: &Map<String, Value>) {
        let Some(s) = status_text(status) else { return };
        let reaper = ["observer", "adopter"]
            .iter()
            .find_map(|k| o.get(*k).and_then(as_pid))
            .or(self.proc(pid).parent)
            .or(Some(self.t.lab_pid));
        self.mark(pid, MarkKind::Reaped, &format!("reaped: {s}"), reaper);
    }

    fn observation(&mut self, o: &Map<String, Value>) {
        let kind = o.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind == "tree" {
            return self.tree(o);
        }
        if let (Some(h), Some(r)) = (o.get("headers"), o.get("rows")) {
            return self.table(h, r);
        }
        let lab = self.t.lab_pid;
        let ppid = o.get("ppid").and_then(as_pid);
        // The subject: a process named by one of SUBJECTS, or else by the only `*_pid`.
        let only_pid = || {
            let mut named = o.iter().filter(|(k, _)| host_pid_key(k));
            match (named.next(), named.next()) {
                (Some((k, v)), None) => as_pid(v).map(|p| (p, k.as_str())),
                _ => None,
            }
        };
        let subject = SUBJECTS
            .iter()
            .find_map(|k| o.get(*k).and_then(as_pid).map(|p| (p, *k)))
            .or_else(only_pid)
            .or_else(|| {
                o.get("status").and_then(debug_status_pid).map(|p| (p, ""))
            });
        if let Some((pid, key)) = subject {
            let role = ["role", "who"]
                .iter()
                .find_map(|k| o.get(*k).and_then(Value::as_str))
                .unwrap_or(match kind {
                    "worker" | "worker_started" | "worker_died" | "worker_exit" => {
                        "worker"
                    }
                    "consumer_exit" => "consumer",
                    k => k.strip_suffix("_started").unwrap_or(role_of_key(key)),
                });
            self.set_role(pid, role);
            self.subject(
                pid,
                kind,
                ppid.or_else(|| o.get("new_ppid").and_then(as_pid)),
                o,
            );
        }
        // Forks, then signals, then what waitpid said.
        let pids = o.get("pids").map(pid_list).unwrap_or_default();
        let forked = o.get("forked") == Some(&Value::Bool(true));
        if kind == "forked" || (forked && subject.is_none()) {
            pids.iter()
                .for_each(|&p| self.mark(p, MarkKind::Fork, "fork", Some(lab)));
        }
        if let Some(p) = o.get("new_pid").and_then(as_pid) {
            self.proc(p).parent = ppid.or(Some(lab));
            self.set_role(p, "worker");
            self.mark(p, MarkKind::Fork, "fork", ppid.or(Some(lab)));
        }
        if subject.is_none() {
            self.signals(o, None);
        }
        for &k in MENTIONS {
            if let Some(p) = o.get(k).and_then(as_pid) {
                self.set_role(p, role_of_key(k));
                match o.get(&format!("{k}_status")) {
                    Some(s) => self.reaped(p, s, o),
                    None if p != lab => self.mark(p, MarkKind::Seen, "", None),
                    None => {}
                }
            }
        }
        for (k, v) in o {
            if host_pid_key(k) && k != "old_pid" && k != "new_pid" {
                if let Some(p) = as_pid(v) {
                    self.set_role(p, role_of_key(k));
                    self.mark(p, MarkKind::Seen, "", None);
                }
            }
            // Lists of {pid, state}: who was asleep where.
            for item in v.as_array().into_iter().flatten() {
                if let (Some(p), Some(s)) =
                    (item.get("pid").and_then(as_pid), item.get("state"))
                {
                    self.state(p, s);
                }
            }
        }
        let statuses = o.get("statuses").and_then(Value::as_array);
        for (i, p) in pids.into_iter().enumerate() {
            match statuses.and_then(|s| s.get(i)) {
                Some(s) => self.reaped(p, s, o),
                None => self.mark(p, MarkKind::Seen, "", None),
            }
        }
        for k in ["workers", "new_workers"] {
            for p in o.get(k).map(pid_list).unwrap_or_default() {
                self.set_role(p, "worker");
                self.mark(p, MarkKind::Seen, "", None);
            }
        }
    }

    /// The signal `sent` (by `sent_by`, or the lab) to each of `signalled`, or else to
    /// the observation's subject.
    fn signals(&mut self, o: &Map<String, Value>, subject: Option<i32>) {
        let Some(sig) = o.get("sent").and_then(Value::as_str) else { return };
        let name = sig.strip_prefix("SIG").unwrap_or(sig);
        let by = o.get("sent_by").and_then(as_pid).unwrap_or(self.t.lab_pid);
        let to = match o.get("signalled") {
            Some(list) => pid_list(list),
            None => subject.into_iter().collect(),
        };
        for p in to {
            self.mark(p, MarkKind::Signal, &format!("kill -{name}"), Some(by));
        }
    }

    /// The facts about the observation's subject, in the order they happen.
    fn subject(
        &mut self,
        pid: i32,
        kind: &str,
        ppid: Option<i32>,
        o: &Map<String, Value>,
    ) {
        let lab = self.t.lab_pid;
        if kind == "forked"
            || kind == "worker_started"
            || o.get("forked") == Some(&Value::Bool(true))
        {
            self.proc(pid).parent = ppid.or(Some(lab));
            self.mark(pid, MarkKind::Fork, "fork", ppid.or(Some(lab)));
        }
        if let Some(pp) = ppid {
            self.parent_is(pid, pp, o);
        }
        if let Some(c) = o.get("exec").and_then(Value::as_str) {
            self.mark(pid, MarkKind::Exec, &format!("exec {c}"), None);
        }
        if let Some(c) = o.get("comm").and_then(Value::as_str) {
            let old = self.proc(pid).comm.replace(c.to_string());
            if old.is_some_and(|o| o != c) {
                self.mark(pid, MarkKind::Exec, &format!("exec {c}"), None);
            }
        }
        if let Some(s) = o.get("state") {
            self.state(pid, s);
        }
        let seen = o.get("states_seen").and_then(Value::as_str).unwrap_or("");
        for c in seen.chars().filter(char::is_ascii_uppercase) {
            self.mark(pid, MarkKind::State(c), &c.to_string(), None);
        }
        // The state is the one seen as the signal went; what waitpid said comes after.
        self.signals(o, Some(pid));
        if let Some(f) = o.get("fate").and_then(Value::as_object) {
            if let Some(pp) = f.get("ppid").and_then(as_pid) {
                self.parent_is(pid, pp, o);
            }
            match f.get("status") {
                Some(s) => self.reaped(pid, s, o),
                None => self.state(pid, f.get("state").unwrap_or(&Value::Null)),
            }
        }
        // `code` and `signal` side by side (one of them null) say what waitpid said too.
        let pair = match (o.get("code"), o.get("signal")) {
            (Some(Value::Number(c)), Some(Value::Null)) => {
                Some(json!({ "exited": c }))
            }
            (Some(Value::Null), Some(Value::String(s))) => {
                Some(json!({ "signal": s }))
            }
            _ => None,
        };
        let status = o.get("status").filter(|s| status_text(s).is_some()).cloned();
        if let Some(s) = status.or(pair) {
            self.reaped(pid, &s, o);
        } else if o.get("gone") == Some(&Value::Bool(true))
            || o.get("ended") == Some(&Value::Bool(true))
        {
            let by = o.get("adopter").and_then(as_pid);
            let word = if o.get("ended").is_some() { "ended" } else { "gone" };
            self.mark(pid, MarkKind::Gone, word, by);
        }
        self.mark(pid, MarkKind::Seen, "", None);
    }

    fn tree(&mut self, o: &Map<String, Value>) {
        let mut rows = Vec::new();
        for r in o.get("processes").and_then(Value::as_array).into_iter().flatten()
        {
            let Some(pid) = r.get("pid").and_then(as_pid) else { continue };
            let cmd =
                r.get("cmd").and_then(Value::as_str).unwrap_or("").to_string();
            let depth =
                r.get("depth").and_then(Value::as_u64).unwrap_or(0) as usize;
            if depth > 0 {
                if let Some(pp) = r.get("ppid").and_then(as_pid) {
                    self.parent_is(pid, pp, o);
                }
                self.state(pid, r.get("state").unwrap_or(&Value::Null));
            }
            self.proc(pid).cmd = cmd.clone();
            let state =
                r.get("state").and_then(Value::as_str).unwrap_or("").to_string();
            rows.push(TreeRow { pid, state, cmd, depth });
        }
        let why = format!("tree at {} (ps --forest)", fmt_t(self.t_us));
        self.panel.trees.push(Tree {
            t_us: self.t_us,
            why,
            rows,
            from_ppids: false,
        });
    }

    fn table(&mut self, headers: &Value, rows: &Value) {
        let h: Vec<&str> = headers
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let rows: Vec<Vec<&str>> = rows
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                r.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect()
            })
            .collect();
        let col = |name: &str| h.iter().position(|x| *x == name);
        let first_is_pid = h.first().is_some_and(|f| {
            f.ends_with("pid") || *f == "worker" || *f == "consumer"
        });
        if first_is_pid && h.len() >= 2 {
            let counts: Option<Vec<(i32, u64)>> = rows
                .iter()
                .map(|r| Some((r.first()?.parse().ok()?, r.get(1)?.parse().ok()?)))
                .collect();
            if let Some(rows) = counts.filter(|c| !c.is_empty()) {
                let per = h[0].trim_end_matches(" pid");
                let what = format!("{} per {per}", h[1]);
                self.panel.shares.push(Share { what, rows });
            }
            return;
        }
        let (Some(pc), Some(ppc)) = (col("pid"), col("ppid")) else {
            return;
        };
        let empty = Map::new();
        for r in &rows {
            let (Some(pid), Some(pp)) = (
                r.get(pc).and_then(|s| s.parse().ok()),
                r.get(ppc).and_then(|s| s.parse().ok()),
            ) else {
                continue;
            };
            if let Some(role) =
                col("role").or(col("process")).and_then(|i| r.get(i))
            {
                self.set_role(pid, role);
            }
            self.parent_is(pid, pp, &empty);
            if let Some(state) = col("state").and_then(|i| r.get(i)) {
                self.state(pid, &Value::from(*state));
            }
        }
    }

    /// The tree of the processes alive in this section, from the ppids seen so far. Of
    /// re-parentings seen one event after another, only the tree after the last is kept.
    fn snapshot(&mut self) {
        let lab = self.t.lab_pid;
        let burst = self.drawn_after + 1 >= self.read;
        if burst && self.panel.trees.last().is_some_and(|t| t.from_ppids) {
            self.panel.trees.pop();
        }
        self.drawn_after = self.read;
        let why = format!("parents at {}, from the ppids seen", fmt_t(self.t_us));
        let ended = |p: &i32| self.procs.get(p).is_some_and(|q| q.ended);
        let mut alive: Vec<i32> = vec![lab];
        for l in &self.panel.lanes {
            if !alive.contains(&l.pid) && !ended(&l.pid) {
                alive.push(l.pid);
            }
        }
        let parent = |p: &i32| self.procs.get(p).and_then(|q| q.parent);
        // A root: the lab, a parent from outside its tree (PID 1, a subreaper), or a
        // process whose parent is not known.
        let mut roots = vec![lab];
        for p in &alive[1..] {
            match parent(p) {
                Some(pp) if alive.contains(&pp) => {}
                Some(pp) if !roots.contains(&pp) && !ended(&pp) => roots.push(pp),
                Some(pp) if !ended(&pp) => {}
                _ => roots.push(*p),
            }
        }
        let mut rows = Vec::new();
        let mut stack: Vec<(i32, usize)> =
            roots.iter().rev().map(|&r| (r, 0)).collect();
        while let Some((p, depth)) = stack.pop() {
            if rows.iter().any(|r: &TreeRow| r.pid == p) {
                continue;
            }
            let q = self.procs.get(&p);
            let state =
                q.and_then(|q| q.state).map(String::from).unwrap_or_default();
            let cmd = q.map(|q| if q.cmd.is_empty() { &q.role } else { &q.cmd });
            let cmd = cmd.cloned().unwrap_or_default();
            rows.push(TreeRow { pid: p, state, cmd, depth });
            let kids = alive.iter().rev().filter(|c| parent(c) == Some(p));
            stack.extend(kids.map(|&c| (c, depth + 1)));
        }
        self.panel.trees.push(Tree {
            t_us: self.t_us,
            why,
            rows,
            from_ppids: true,
        });
    }

    fn close_panel(&mut self) {
        let mut p = std::mem::take(&mut self.panel);
        // A lane with nothing marked in this section says nothing new.
        p.lanes.retain(|l| {
            l.marks.iter().any(|m| m.kind != MarkKind::Seen || !l.before)
        });
        for l in &mut p.lanes {
            l.role =
                self.procs.get(&l.pid).map(|q| q.role.clone()).unwrap_or_default();
            if l.role.is_empty()
                && self.procs.get(&l.pid).and_then(|q| q.parent)
                    == Some(self.t.lab_pid)
            {
                l.role = "child".into();
            }
        }
        let lab = self.t.lab_pid;
        if let Some(i) = p.lanes.iter().position(|l| l.pid == lab) {
            let l = p.lanes.remove(i);
            p.lanes.insert(0, l);
        } else if !p.lanes.is_empty() {
            let (role, marks, more) = ("lab".to_string(), Vec::new(), Vec::new());
            let before = true;
            let lane = Lane {
                pid: lab,
                role,
                marks,
                before,
                state_before: None,
                after: true,
                more,
            };
            p.lanes.insert(0, lane);
        }
        p.lanes.first_mut().into_iter().for_each(|l| l.before = true);
        group(&mut p.lanes);
        // A tree drawn from ppids gives way to a tree observed after it that shows all its
        // processes but the lab (not when it shows where one went: under PID 1, outside).
        let shown_later = |i: usize, trees: &[Tree]| {
            trees[i + 1..].iter().any(|t| {
                !t.from_ppids
                    && trees[i].rows.iter().all(|r| {
                        r.pid == lab || t.rows.iter().any(|o| o.pid == r.pid)
                    })
            })
        };
        let keep: Vec<bool> = (0..p.trees.len())
            .map(|i| !p.trees[i].from_ppids || !shown_later(i, &p.trees))
            .collect();
        let mut k = keep.into_iter();
        p.trees.retain(|_| k.next().unwrap_or(true));
        p.trees.truncate(3);
        if p.lanes.is_empty() && p.trees.is_empty() && p.shares.is_empty() {
            if !p.title.is_empty() {
                self.t.quiet.push(p.title);
            }
        } else {
            self.t.panels.push(p);
        }
    }
}

/// Lanes that read alike (same role, same kinds of marks in the same columns' order) are
/// drawn as one when there are too many.
fn group(lanes: &mut Vec<Lane>) {
    if lanes.len() <= MAX_LANES {
        return;
    }
    let key = |l: &Lane| {
        let kinds: Vec<String> =
            l.marks.iter().map(|m| format!("{:?}", m.kind)).collect();
        (l.role.clone(), l.before, kinds)
    };
    let mut out: Vec<Lane> = Vec::new();
    for l in lanes.drain(..) {
        match out.iter_mut().skip(1).find(|o| key(o) == key(&l)) {
            Some(o) if l.role != "lab" => o.more.push(l.pid),
            _ => out.push(l),
        }
    }
    *lanes = out;
}
