//! Observations, checks and the verdict.
//!
//! A lab states each fact once, by name and value, and the harness derives both the human
//! line and the JSON from it:
//!
//! ```ignore
//! observe!(lab, "state", "/proc/{pid}/stat says {state}", pid, state = State(s));
//! check!(lab, "zombie_seen", zombies == n, "{zombies} of {n} children are zombies");
//! ```
//!
//! prints `observed: /proc/4212/stat says Z (zombie)` and, with `--json`,
//! `{"event":"observation","kind":"state","pid":4212,"state":"Z",...}`. A value is any
//! `Display + Serialize` (see [`crate::wait::Status`] and [`crate::procfacts::State`]).
//!
//! [`Lab::finish`] prints the verdict and exits 0 when every check held, 3 when one did not.
//! The verdict is printed on every way out: a failing call ([`crate::die`], exit 1) and a
//! panic give an `could_not_run` verdict, SIGINT/SIGTERM an `interrupted` one (JSON), and
//! [`Lab::not_observed`] ends the lab early when a call fails *because* the phenomenon is
//! absent (ESRCH, ECHILD, a timeout).

use crate::{
    cleanup, clock, narrate, EXIT_ERROR, EXIT_NOT_OBSERVED, EXIT_VERIFIED,
};
use serde_json::{json, Map, Value};
use std::fmt::Display;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;

pub mod lanes;
mod reading;
pub mod timeline;
#[cfg(test)]
#[path = "report/timeline_tests.rs"]
mod timeline_tests;

/// The flags every lab takes. Flatten it into the lab's own clap parser:
/// `#[command(flatten)] common: Common`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Common {
    /// Print JSON lines only: every observation and check, then the verdict.
    #[arg(long)]
    pub json: bool,
    /// Pause at each observation until Enter (only when stdin is a terminal), to look at
    /// the processes from another terminal with ps or /proc. Paused time never counts
    /// against a deadline.
    #[arg(long)]
    pub step: bool,
    /// At the end, draw what happened as lanes, one per process: fork, exec, the states
    /// seen, signals sent, exit and reaping, the process trees (not with --json).
    #[arg(long)]
    pub timeline: bool,
}

/// The environment variable naming a file into which the lab also writes its JSON events
/// (whatever its output), so that `lab record` gets the text and the events of one run.
pub const EVENTS_VAR: &str = "PROCLAB_EVENTS";

/// What a run of a lab ended with (the `outcome` of the verdict).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0: every check held.
    Verified,
    /// Exit 3: it ran, but a check did not hold on this run.
    NotObserved,
    /// Exit 1: a call failed (the error names it) or the lab panicked.
    CouldNotRun,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Verified => "verified",
            Outcome::NotObserved => "not_observed",
            Outcome::CouldNotRun => "could_not_run",
        }
    }
}

/// The state of the lab in progress: kept where [`crate::die`] and the panic hook can
/// reach it, so that they too end with a verdict.
struct Record {
    name: &'static str,
    claim: String,
    json: bool,
    step: bool,
    section: String,
    checks: Vec<(String, bool)>,
    start_ns: u64,
    /// Every event so far, kept when `--timeline` or [`EVENTS_VAR`] asks for them.
    events: Option<Vec<Value>>,
    events_path: Option<std::path::PathBuf>,
    timeline: bool,
}

static RECORD: Mutex<Option<Record>> = Mutex::new(None);

fn with<T>(f: impl FnOnce(&mut Record) -> T) -> Option<T> {
    let mut g = RECORD.lock().unwrap_or_else(|p| p.into_inner());
    g.as_mut().map(f)
}

/// One lab run: its observations, its checks and, at the end, its verdict.
pub struct Lab {
    _guard: cleanup::Guard,
}

impl Lab {
    /// Start the lab `name`, which sets out to show `claim`: this process becomes the
    /// "parent" of the narration, and the cleanup handlers (SIGINT, SIGTERM, panic) are
    /// installed.
    pub fn start(
        name: &'static str,
        claim: impl Into<String>,
        common: &Common,
    ) -> Lab {
        narrate::set_owner_here();
        narrate::set_quiet(common.json);
        narrate::set_colour(!common.json && narrate::colour_wanted());
        cleanup::install();
        if common.json {
            for sig in [libc::SIGINT, libc::SIGTERM] {
                let v = json!({"event": "verdict", "lab": name, "ok": false,
                    "outcome": "interrupted", "signal": signal_name(sig)});
                cleanup::set_interrupted_line(sig, format!("{v}\n").as_bytes());
            }
        }
        let step = common.step && std::io::stdin().is_terminal() && !common.json;
        // Read once, here, and removed so that no child (a re-executed worker) writes it.
        let events_path =
            std::env::var_os(EVENTS_VAR).map(std::path::PathBuf::from);
        std::env::remove_var(EVENTS_VAR);
        let timeline = common.timeline && !common.json;
        let keep = timeline || events_path.is_some();
        *RECORD.lock().unwrap_or_else(|p| p.into_inner()) = Some(Record {
            name,
            claim: claim.into(),
            json: common.json,
            step,
            section: String::new(),
            checks: Vec::new(),
            start_ns: clock::lab_ns(),
            events: keep.then(Vec::new),
            events_path,
            timeline,
        });
        Lab { _guard: cleanup::Guard }
    }

    /// The lab's name, as in `cargo run --bin NAME`.
    pub fn name(&self) -> &'static str {
        with(|r| r.name).unwrap_or("")
    }

    /// True with `--json`.
    pub fn json(&self) -> bool {
        with(|r| r.json).unwrap_or(false)
    }

    /// True when `--step` pauses are on (a terminal, not `--json`).
    pub fn stepping(&self) -> bool {
        with(|r| r.step).unwrap_or(false)
    }

    /// A heading for the next part of the lab. Every later observation and check carries
    /// it as `section`; with `--json` it is an event of its own.
    pub fn section(&mut self, title: &str) {
        let json = with(|r| {
            r.section = title.to_string();
            r.json
        })
        .unwrap_or(false);
        emit(
            "section",
            Map::from_iter([
                ("title".to_string(), Value::from(title)),
                ("pid".to_string(), Value::from(narrate::owner())),
            ]),
        );
        if !json {
            let t = paint("1", &format!("== {title} =="));
            narrate::write_all_fd(1, format!("\n{t}\n").as_bytes());
        }
    }

    /// Record a fact the lab observed, with its `facts` by name. Prefer the
    /// [`observe!`](crate::observe) macro, which names each fact once for both outputs.
    pub fn observe_facts(
        &mut self,
        kind: &str,
        facts: Vec<(&str, Value)>,
        text: String,
    ) {
        let pids = pids_in(&facts);
        let mut obj: Map<String, Value> =
            facts.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        self.put_observation(kind, &mut obj, &text);
        self.pause(&pids);
    }

    /// Record a fact from a JSON object of fields and a human line (for facts whose JSON
    /// is built elsewhere, such as a report of a worker).
    pub fn observe(&mut self, kind: &str, fields: Value, text: impl Display) {
        let mut obj = match fields {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => Map::from_iter([("value".to_string(), other)]),
        };
        let pids = pids_in(
            &obj.iter().map(|(k, v)| (k.as_str(), v.clone())).collect::<Vec<_>>(),
        );
        self.put_observation(kind, &mut obj, &text.to_string());
        self.pause(&pids);
    }

    fn put_observation(
        &mut self,
        kind: &str,
        obj: &mut Map<String, Value>,
        text: &str,
    ) {
        obj.insert("kind".into(), kind.into());
        obj.insert("text".into(), text.into());
        emit("observation", std::mem::take(obj));
        if !self.json() {
            let tag = paint("33", "observed:");
            narrate::write_all_fd(1, format!("  {tag} {text}\n").as_bytes());
        }
    }

    /// Record whether a claim held, judged from what was observed; `facts` are the values
    /// it was judged on. Returns `ok`. Prefer the [`check!`](crate::check) macro.
    pub fn check_facts(
        &mut self,
        name: &str,
        ok: bool,
        facts: Vec<(&str, Value)>,
        text: String,
    ) -> bool {
        let json = with(|r| {
            r.checks.push((name.to_string(), ok));
            r.json
        })
        .unwrap_or(false);
        let mut obj: Map<String, Value> =
            facts.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        obj.insert("name".into(), name.into());
        obj.insert("ok".into(), ok.into());
        obj.insert("text".into(), text.clone().into());
        emit("check", obj);
        if !json {
            let tag = if ok {
                paint("32", "✓ verified:")
            } else {
                paint("31", "✗ NOT observed:")
            };
            narrate::write_all_fd(1, format!("  {tag} {text}\n").as_bytes());
        }
        ok
    }

    /// [`Lab::check_facts`] without facts.
    pub fn check(&mut self, name: &str, ok: bool, text: impl Display) -> bool {
        self.check_facts(name, ok, Vec::new(), text.to_string())
    }

    /// A call failed *because* the phenomenon did not happen (the zombie was already
    /// reaped: ESRCH; the orphan's parent reaped it: ECHILD; a wait timed out): record
    /// the check `name` as not holding, say `why`, and end the lab with its verdict (exit 3).
    pub fn not_observed(&mut self, name: &str, why: impl Display) -> ! {
        self.check(name, false, why);
        self.end()
    }

    /// Print a table (human output), or record it as one observation of kind `kind` with
    /// `headers` and `rows` (with `--json`).
    pub fn table(&mut self, kind: &str, headers: &[&str], rows: &[Vec<String>]) {
        let obj = Map::from_iter([
            ("kind".to_string(), Value::from(kind)),
            ("headers".to_string(), json!(headers)),
            ("rows".to_string(), json!(rows)),
        ]);
        emit("observation", obj);
        if !self.json() {
            narrate::write_all_fd(1, render_table(headers, rows).as_bytes());
        }
    }

    /// Show the processes below `root` (pid, ppid, state, command) like `ps -f --forest`.
    pub fn show_tree(&mut self, root: nix::unistd::Pid) {
        let rows = crate::procfacts::tree(root.as_raw());
        let facts: Vec<Value> = rows
            .iter()
            .map(|r| json!({"pid": r.pid, "ppid": r.ppid, "state": r.state.to_string(), "cmd": r.cmd, "depth": r.depth}))
            .collect();
        let obj = Map::from_iter([
            ("kind".to_string(), Value::from("tree")),
            ("root".to_string(), Value::from(root.as_raw())),
            ("processes".to_string(), facts.into()),
        ]);
        emit("observation", obj);
        if self.json() {
            return;
        }
        let mut out = String::from("      PID    PPID S  CMD\n");
        for r in rows {
            let indent = if r.depth == 0 {
                String::new()
            } else {
                "    ".repeat(r.depth - 1) + " \\_ "
            };
            out += &format!(
                "  {:>7} {:>7} {}  {indent}{}\n",
                r.pid, r.ppid, r.state, r.cmd
            );
        }
        narrate::write_all_fd(1, out.as_bytes());
    }

    /// With `--step` on a terminal: say what to look at (the pids just observed and a
    /// command to try), then wait for Enter. The wait does not count against deadlines.
    pub fn pause(&self, pids: &[i32]) {
        if !self.stepping() {
            return;
        }
        let me = narrate::owner();
        let mut try_this = format!("ps -o pid,ppid,stat,cmd --ppid {me}");
        if let Some(p) = pids.iter().find(|&&p| p > 0 && p != me) {
            try_this += &format!("; cat /proc/{p}/status");
        }
        let hint = paint(
            "2",
            &format!("  [--step] look from another terminal: {try_this}  (Enter goes on)"),
        );
        narrate::write_all_fd(1, format!("{hint}\n").as_bytes());
        clock::pausing(|| {
            let mut s = String::new();
            let _ = std::io::stdin().lock().read_line(&mut s);
        });
    }

    /// True if every check so far held (and there was at least one).
    pub fn all_ok(&self) -> bool {
        with(|r| !r.checks.is_empty() && r.checks.iter().all(|(_, ok)| *ok))
            .unwrap_or(false)
    }

    /// Print the verdict on the claim and exit: 0 if every check held, 3 if any did not (or
    /// none was made). Children still owned are killed and reaped first.
    pub fn finish(mut self) -> ! {
        self.end()
    }

    fn end(&mut self) -> ! {
        cleanup::cleanup();
        let ok = self.all_ok();
        let outcome = if ok { Outcome::Verified } else { Outcome::NotObserved };
        verdict(outcome, None);
        std::process::exit(if ok { EXIT_VERIFIED } else { EXIT_NOT_OBSERVED })
    }
}

/// The lab time now, in µs since the lab started: the clock of every event's `t_us`. A
/// fact reported after the moment it describes names that moment `at_us`, so the
/// timeline puts it in its place (a thread's kills, reported when it has been joined).
pub fn lab_time_us() -> u64 {
    let start = with(|r| r.start_ns).unwrap_or(0);
    clock::lab_ns().saturating_sub(start) / 1000
}

/// Print the verdict (JSON or human) from the record. Nothing if no lab was started.
fn verdict(outcome: Outcome, error: Option<&str>) {
    let Some((name, claim, json, checks)) =
        with(|r| (r.name, r.claim.clone(), r.json, r.checks.clone()))
    else {
        return;
    };
    let _ = name;
    let failed: Vec<&str> =
        checks.iter().filter(|(_, ok)| !ok).map(|(n, _)| n.as_str()).collect();
    let n = checks.len();
    let mut obj = Map::new();
    obj.insert("ok".into(), (outcome == Outcome::Verified).into());
    obj.insert("outcome".into(), outcome.as_str().into());
    obj.insert("claim".into(), claim.clone().into());
    obj.insert("checks".into(), n.into());
    obj.insert("failed".into(), json!(failed));
    if let Some(e) = error {
        obj.insert("error".into(), e.into());
    }
    emit("verdict", obj);
    let (events, path, timeline) = with(|r| {
        (r.events.take().unwrap_or_default(), r.events_path.take(), r.timeline)
    })
    .unwrap_or_default();
    if let Some(path) = path {
        let lines: String = events.iter().map(|e| format!("{e}\n")).collect();
        if let Err(e) = std::fs::write(&path, lines) {
            eprintln!(
                "warning: cannot write the events to {}: {e}",
                path.display()
            );
        }
    }
    if !json {
        if timeline {
            let drawn = timeline::Timeline::from_events(&events)
                .ascii(timeline::ASCII_WIDTH);
            narrate::write_all_fd(1, format!("\n{drawn}").as_bytes());
        }
        let line = match outcome {
            Outcome::Verified => paint("1;32", &format!("verdict: VERIFIED ({n} of {n} checks): {claim}")),
            Outcome::NotObserved if n == 0 => paint(
                "1;31",
                &format!("verdict: NOT OBSERVED on this run (no check was made): {claim}"),
            ),
            Outcome::NotObserved => paint(
                "1;31",
                &format!(
                    "verdict: NOT OBSERVED on this run ({} of {n} checks failed: {}): {claim}",
                    failed.len(),
                    failed.join(", ")
                ),
            ),
            Outcome::CouldNotRun => paint(
                "1;31",
                &format!(
                    "verdict: COULD NOT RUN ({}; {} of {n} checks made before it): {claim}",
                    error.unwrap_or("error"),
                    n
                ),
            ),
        };
        narrate::write_all_fd(1, format!("\n{line}\n").as_bytes());
    }
    let _ = std::io::stdout().flush();
}

/// Called by [`crate::die`] and the panic hook in the lab's main process: the verdict
/// `could_not_run`, naming what failed. The caller exits 1.
pub(crate) fn could_not_run(error: &str) {
    // A die() while the record is locked (it never is across a call that can fail)
    // must not deadlock: give up on the verdict instead.
    if RECORD.try_lock().is_err() {
        return;
    }
    verdict(Outcome::CouldNotRun, Some(error));
}

/// Exit code for a verdict outcome.
pub fn exit_code(o: Outcome) -> i32 {
    match o {
        Outcome::Verified => EXIT_VERIFIED,
        Outcome::NotObserved => EXIT_NOT_OBSERVED,
        Outcome::CouldNotRun => EXIT_ERROR,
    }
}

fn signal_name(sig: i32) -> &'static str {
    nix::sys::signal::Signal::try_from(sig).map(|s| s.as_str()).unwrap_or("signal")
}

/// One event, `{"event": event, "lab": ..., "section": ..., "t_us": ..., ...}`: a JSON line on
/// stdout with `--json`, and kept for `--timeline` and the events file ([`EVENTS_VAR`]).
fn emit(event: &str, mut obj: Map<String, Value>) {
    let Some((name, section, start)) =
        with(|r| (r.name, r.section.clone(), r.start_ns))
    else {
        return;
    };
    obj.insert("event".into(), event.into());
    obj.insert("lab".into(), name.into());
    if event != "section" && event != "verdict" && !section.is_empty() {
        obj.entry("section").or_insert(section.into());
    }
    obj.insert(
        "t_us".into(),
        ((clock::lab_ns().saturating_sub(start)) / 1000).into(),
    );
    let event = Value::Object(obj);
    let json = with(|r| {
        if let Some(events) = r.events.as_mut() {
            events.push(event.clone());
        }
        r.json
    })
    .unwrap_or(false);
    if json {
        narrate::write_all_fd(1, format!("{event}\n").as_bytes());
    }
}

fn paint(code: &str, text: &str) -> String {
    if narrate::colour() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// The pids a fact names (`pid`, `child`, `orphan`, `*_pid`, `pids`, ...) that are still
/// in /proc, for the `--step` prompt: it never suggests looking at a process that is gone.
fn pids_in(facts: &[(&str, Value)]) -> Vec<i32> {
    const ROLES: &[&str] = &[
        "pid", "child", "orphan", "parent", "worker", "peer", "holder", "victim",
        "reader", "writer", "producer", "consumer", "leaver", "master", "pids",
        "children", "workers",
    ];
    let mut out = Vec::new();
    for (k, v) in facts {
        if !(ROLES.contains(k) || k.ends_with("_pid") || k.ends_with("_pids")) {
            continue;
        }
        match v {
            Value::Number(n) => out.extend(n.as_i64().map(|p| p as i32)),
            Value::Array(a) => {
                out.extend(a.iter().filter_map(|x| x.as_i64()).map(|p| p as i32))
            }
            _ => {}
        }
    }
    out.retain(|&p| p > 0 && crate::procfacts::exists(p));
    out
}

/// A text table: words left-aligned, numbers (negative ones too) right-aligned, a rule
/// under the headers.
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> =
        headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let fmt_row = |cells: Vec<&str>| {
        let mut s = String::from(" ");
        for (i, c) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i > 0 && is_number(c) {
                s.push_str(&format!(" {c:>w$}"));
            } else {
                s.push_str(&format!(" {c:<w$}"));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = fmt_row(headers.to_vec());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out += &fmt_row(rule.iter().map(|s| s.as_str()).collect());
    for row in rows {
        out += &fmt_row(row.iter().map(|s| s.as_str()).collect());
    }
    out
}

/// True if a table cell is a number, with or without its unit: `-131 B`, `4.20 µs`,
/// `1.50x`, `35.2%`; not a text that merely starts with one (`4 of 6 workers`, `2^10`).
fn is_number(cell: &str) -> bool {
    let cell = cell.trim();
    let end = cell
        .char_indices()
        .find(|&(i, ch)| {
            !(ch.is_ascii_digit() || ch == '.' || (i == 0 && ch == '-'))
        })
        .map_or(cell.len(), |(i, _)| i);
    let (number, unit) = cell.split_at(end);
    let unit = unit.trim_start();
    let unit_ok =
        unit.chars().all(|ch| ch.is_alphabetic() || ch == '%' || ch == '/');
    number.parse::<f64>().is_ok() && unit_ok
}

/// A fact's value as JSON (used by the macros).
#[doc(hidden)]
pub fn fact<T: serde::Serialize + ?Sized>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// `observe!(lab, "kind", "text with {a} and {b:.1}", a, b = expr)`: record an observation
/// whose facts `a` and `b` are named once, for the human line and the JSON alike. A fact
/// is any value that is `Display` (if the text shows it) and `serde::Serialize`.
#[macro_export]
macro_rules! observe {
    ($lab:expr, $kind:expr, $fmt:literal $(, $name:ident $(= $val:expr)?)* $(,)?) => {{
        $( let $name = &$crate::__fact_value!($name $(= $val)?); )*
        let facts = vec![$( (stringify!($name), $crate::report::fact($name)) ),*];
        $lab.observe_facts($kind, facts, format!($fmt))
    }};
}

/// `check!(lab, "name", ok, "text with {a}", a, b = expr)`: record whether a claim held,
/// with the facts it was judged on; returns `ok`.
#[macro_export]
macro_rules! check {
    ($lab:expr, $check:expr, $ok:expr, $fmt:literal $(, $name:ident $(= $val:expr)?)* $(,)?) => {{
        let ok: bool = $ok; // judged before the facts are bound by name below
        $( let $name = &$crate::__fact_value!($name $(= $val)?); )*
        let facts = vec![$( (stringify!($name), $crate::report::fact($name)) ),*];
        $lab.check_facts($check, ok, facts, format!($fmt))
    }};
}

#[doc(hidden)]
#[macro_export]
macro_rules! __fact_value {
    ($name:ident) => {
        $name
    };
    ($name:ident = $val:expr) => {
        $val
    };
}

#[cfg(test)]
mod table_tests {
    use super::{is_number, render_table};

    #[test]
    fn a_cell_is_a_number_only_if_it_parses_as_one_units_aside() {
        for n in ["42", "-131 B", "4.20 µs", "1.50x", "35.2%", "2100 KiB", "3 MB/s"]
        {
            assert!(is_number(n), "{n}");
        }
        for t in
            ["4 of 6 workers", "2^10", "1 MiB touched", "12 vs 300 KiB", "-", ""]
        {
            assert!(!is_number(t), "{t}");
        }
    }

    #[test]
    fn text_starting_with_a_digit_is_left_aligned() {
        let rows = vec![
            vec!["a".into(), "2 threads, then 2 processes".into(), "7 ms".into()],
            vec!["b".into(), "none".into(), "12.50 ms".into()],
        ];
        let t = render_table(&["", "what", "took"], &rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[2], "  a 2 threads, then 2 processes     7 ms");
        assert_eq!(lines[3], "  b none                        12.50 ms");
    }
}
