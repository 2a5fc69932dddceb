//! What a worker tells the lab: one JSON line per message on its stdout (a pipe to the
//! lab). A worker is the lab re-executed with `--role`; see `worker.rs`.

use serde::{Deserialize, Serialize};
use std::io::Write;

/// One message from a worker to the lab, `{"ev": "hold", ...}` on the wire.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Msg {
    /// A thread of a ring holds its first lock.
    Hold(Held),
    /// The worker's wait-for graph closed: the cycle, edge by edge, and how long after
    /// the last thread asked for its second lock it was seen.
    Cycle { edges: Vec<Edge>, detected_after_us: u64 },
    /// parking_lot's detector answered: its cycles (none yet: `no_deadlock` answers so
    /// far) and where each thread waits.
    ParkingLot {
        cycles: usize,
        threads: Vec<Stuck>,
        after_us: u64,
        no_deadlock: u64,
    },
    /// A fix finished: its counters and what went wrong on the way.
    Done(Done),
}

/// A thread of a ring holds `lock`, a mutex of `size` bytes at address `at` in the
/// worker: a futex wait on an address inside it is a wait for this lock.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Held {
    pub thread: String,
    pub tid: i32,
    pub lock: String,
    pub at: u64,
    pub size: u64,
}

impl Held {
    /// True if `addr` lies inside the lock (a futex word of it).
    pub fn contains(&self, addr: u64) -> bool {
        (self.at..self.at + self.size).contains(&addr)
    }
}

/// One edge of a cycle: `thread` holds `holds` and waits for `waits_for`, held by
/// `held_by`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Edge {
    pub thread: String,
    pub holds: String,
    pub waits_for: String,
    pub held_by: String,
}

/// A thread parking_lot found deadlocked, with the frames of the lab's own code in its
/// backtrace (the innermost first: where it waits).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Stuck {
    pub thread: String,
    pub frames: Vec<String>,
}

/// A fix's final report. Two threads count `a` and `b` (each round adds one to both);
/// philosophers count `meals`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Done {
    pub a: u64,
    pub b: u64,
    pub meals: u64,
    pub elapsed_us: u64,
    /// Failed `try_lock`s (and timed locks that gave up), each followed by a release.
    pub retries: u64,
    pub gave_up: u64,
    /// The lockstep run: its rounds, and how many `try_lock`s succeeded in them.
    pub rounds: u64,
    pub successes: u64,
    /// One line for a person.
    pub summary: String,
}

/// In a worker: send `m` to the lab (one line, flushed at once).
pub fn send(m: &Msg) {
    let mut out = std::io::stdout().lock();
    let line = serde_json::to_string(m).expect("a message serialises");
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// In the lab: the message on one line from a worker (None if it is not one).
pub fn parse(line: &str) -> Option<Msg> {
    serde_json::from_str(line).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_crosses_as_one_tagged_line() {
        let (thread, lock) = ("t1".into(), "A".into());
        let m = Msg::Hold(Held { thread, tid: 42, lock, at: 4096, size: 8 });
        let line = serde_json::to_string(&m).unwrap();
        let want =
            r#"{"ev":"hold","thread":"t1","tid":42,"lock":"A","at":4096,"size":8}"#;
        assert_eq!(line, want);
        assert_eq!(parse(&line), Some(m));
        let done = Msg::Done(Done { a: 4, b: 4, ..Done::default() });
        let line = serde_json::to_string(&done).unwrap();
        assert!(line.starts_with(r#"{"ev":"done","a":4,"b":4,"#), "{line}");
        assert_eq!(parse(&line), Some(done));
        assert_eq!(parse("thread 'x' panicked"), None);
    }
}
