//! What happened, drawn from a run's events: one lane per process, marking its fork, exec,
//! the states seen, the signals sent to it, its end and its reaping; the process tree at
//! the key moments; the work each worker did. `--timeline` prints it as text lanes at the
//! end of a run, and `lab record` draws the book's picture from the same model.
//!
//! The picture reads the facts the observations and checks already name, nothing else:
//! - a process: `pid`, else `orphan`, `child` or `holder`, else the only `*_pid` (the
//!   subject); `parent`, `victim`, `survivor`, `waiter`, `refused`, `new_pid`,
//!   `observer`, `answered_by`, any `*_pid` but `ns_*` (`ns_pid`, `ns_ppid`: pids inside
//!   a PID namespace, another numbering); lists `pids`, `workers`, `new_workers`;
//!   `role` or `who` says what the subject is;
//! - of the subject: `ppid` or `new_ppid` (a change is a re-parenting), `state`,
//!   `states_seen`, `comm` (a change is an exec), `exec` (the program it now runs),
//!   `sent` (a signal sent to it, or to each of `signalled`, by `sent_by` or the lab),
//!   `status` (what waitpid returned: it ended and was reaped, by `observer`, `adopter`
//!   or its parent; or `code` and `signal`, one of them null), `fate`, `gone` (ended
//!   with no status kept), `ended`; `X_status` for the process named `X`; `statuses`
//!   beside `pids`;
//! - when: `at_us`, for a fact reported after it happened (lab time, as `t_us`);
//! - a fork: kinds `forked` and `worker_started`, or `forked: true` (of the subject, or
//!   of `pids`), by `ppid` or the lab; kind `tree`: the tree at that moment; a table
//!   with a pid column then a count (tasks per worker), or with `pid`, `ppid` and
//!   `state` columns (a family).
//!
//! Time runs left to right in the order of the events; each column is labelled with its
//! lab time, so a gap of one second and one of one microsecond take the same room.

use serde_json::Value;

/// The width of `--timeline`, in characters.
pub const ASCII_WIDTH: usize = 80;
/// The width of the lane labels (`4232 child`), in characters.
pub const LABEL_WIDTH: usize = 17;

/// What a mark on a lane says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MarkKind {
    Fork,
    Seen,
    State(char),
    Exec,
    Signal,
    Reparent,
    /// Ended and reaped: waitpid returned its status.
    Reaped,
    /// Gone with no status kept (SIGCHLD ignored), or ended by itself elsewhere.
    Gone,
}

/// One mark: in column `col` of its section, `text` on the lane; `from` is the process
/// at the other end (the parent that forked, the sender, the reaper, the new parent).
#[derive(Clone, Debug)]
pub struct Mark {
    pub col: usize,
    pub kind: MarkKind,
    pub text: String,
    pub from: Option<i32>,
}

/// One process in one section.
#[derive(Clone, Debug)]
pub struct Lane {
    pub pid: i32,
    pub role: String,
    pub marks: Vec<Mark>,
    /// It was alive before the section began.
    pub before: bool,
    /// Its state when the section began, if one was seen.
    pub state_before: Option<char>,
    /// It is seen again in a later section (so it lived on after its last mark here).
    pub after: bool,
    /// Other pids drawn as this lane (they read alike).
    pub more: Vec<i32>,
}

/// A process tree at one moment: observed (`ps --forest` style) or from the ppids seen.
#[derive(Clone, Debug)]
pub struct Tree {
    pub t_us: u64,
    pub why: String,
    pub rows: Vec<TreeRow>,
    /// Drawn from the ppids seen (after a re-parenting), not observed as a tree.
    pub from_ppids: bool,
}

#[derive(Clone, Debug)]
pub struct TreeRow {
    pub pid: i32,
    pub state: String,
    pub cmd: String,
    pub depth: usize,
}

/// Work per worker: `what` ("tasks") counted for each pid.
#[derive(Clone, Debug)]
pub struct Share {
    pub what: String,
    pub rows: Vec<(i32, u64)>,
}

/// One section of the lab.
#[derive(Clone, Debug, Default)]
pub struct Panel {
    pub title: String,
    /// The lab time (µs) of each column.
    pub times: Vec<u64>,
    pub lanes: Vec<Lane>,
    pub trees: Vec<Tree>,
    pub shares: Vec<Share>,
}

/// A run, section by section.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub lab: String,
    pub lab_pid: i32,
    pub panels: Vec<Panel>,
    /// Sections with no single process, tree or share to draw.
    pub quiet: Vec<String>,
}

impl Timeline {
    /// The timeline of a run from its events (`--json` lines, or the events file).
    pub fn from_events(events: &[Value]) -> Timeline {
        super::reading::read(events)
    }
    /// Every pid drawn on a lane of its own (not those grouped into another's lane).
    pub fn pids(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self
            .panels
            .iter()
            .flat_map(|p| p.lanes.iter().map(|l| l.pid))
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// A lab time, short, to 3 or 4 digits: `0.42ms`, `26.3ms`, `1.128s`.
pub fn fmt_t(t_us: u64) -> String {
    let ms = t_us as f64 / 1000.0;
    match t_us {
        0..10_000 => format!("{ms:.2}ms"),
        10_000..100_000 => format!("{ms:.1}ms"),
        100_000..1_000_000 => format!("{ms:.0}ms"),
        1_000_000..10_000_000 => format!("{:.3}s", ms / 1000.0),
        _ => format!("{:.2}s", ms / 1000.0),
    }
}
