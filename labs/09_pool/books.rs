//! The master's bookkeeping: the board in shared memory (who runs what), its record of each
//! worker (pipe ends, inbox, tasks in flight), what `map` returns (one outcome per input,
//! filed in input order), and the record of each worker that died and was replaced.

use super::wire::Frames;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use proclab::{cleanup, procfacts, Status};
use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// `waitpid` with a deadline (lab time): how `pid` ended, or None if it still runs then.
pub fn reap_by(pid: Pid, within: Duration) -> Option<Status> {
    let reaped = procfacts::poll_until(within, || {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => None,
            other => Some(Status(other)),
        }
    });
    if reaped.is_some() {
        cleanup::forget(pid);
    }
    reaped
}

/// [`reap_by`], and a child still running at the deadline is killed (SIGKILL) and
/// reaped: its status, and whether it ended by itself in time.
pub fn reap_or_kill(pid: Pid, within: Duration) -> (Status, bool) {
    if let Some(status) = reap_by(pid, within) {
        return (status, true);
    }
    let _ = kill(pid, Signal::SIGKILL);
    let status = Status(waitpid(pid, None)); // SIGKILL cannot be ignored: this returns
    cleanup::forget(pid);
    (status, false)
}

pub const MAX_WORKERS: usize = 64;

/// Who is working on what, in shared memory: `pid << 32 | (task + 1) << 4 | attempt`, or
/// `pid << 32` when idle. One word, so a reader never pairs a pid with another's task.
pub struct Board {
    pub slots: [AtomicU64; MAX_WORKERS],
}

pub fn unpack(word: u64) -> (i32, Option<(usize, u32)>) {
    let pid = (word >> 32) as i32;
    let task = (word & 0xffff_fff0) >> 4;
    (pid, (task > 0).then(|| (task as usize - 1, (word & 0xf) as u32)))
}

/// A task's outcome: its value, or the number of attempts after which it was given up.
pub type Outcome = Result<u64, u32>;

/// A worker that died during a map and was replaced: (slot, its pid, its wait status, the
/// task and attempt it was running, the new worker's pid, the new worker's ppid in /proc).
#[derive(Clone, Debug)]
pub struct Replacement(
    pub usize,
    pub Pid,
    pub Status,
    pub Option<(usize, u32)>,
    pub Pid,
    pub i32,
);

/// What `map` returns: one outcome per input, in input order (None: lost, which must not happen).
pub struct MapResult {
    pub results: Vec<Option<Outcome>>,
    /// Results for a task that already had one.
    pub duplicates: usize,
    /// For each task, how many results had arrived before its own.
    pub rank: Vec<usize>,
    pub timed_out: bool,
    pub left: usize,
    arrived: usize,
}

impl MapResult {
    pub fn new(n: usize) -> MapResult {
        MapResult {
            results: vec![None; n],
            duplicates: 0,
            rank: vec![0; n],
            timed_out: false,
            left: n,
            arrived: 0,
        }
    }

    /// File the outcome of task `id` at its own index: that is what puts results in order.
    pub fn put(&mut self, id: usize, outcome: Outcome) {
        if id >= self.results.len() {
            return; // a stray result (of an earlier map that timed out): not ours
        }
        if self.results[id].is_some() {
            self.duplicates += 1;
            return;
        }
        self.results[id] = Some(outcome);
        self.rank[id] = self.arrived;
        self.arrived += 1;
        self.left -= 1;
    }

    pub fn values(&self) -> Vec<u64> {
        let value = |r: &Option<Outcome>| r.and_then(|o| o.ok()).unwrap_or(0);
        self.results.iter().map(value).collect()
    }
}

impl Replacement {
    /// The signal that ended the old worker, if a signal did.
    pub fn signal(&self) -> Option<i32> {
        self.2.signal().map(|s| s as i32)
    }
}

/// One worker as the master sees it.
pub struct Worker {
    pub pid: Pid,
    pub tasks: OwnedFd,   // write end: master -> worker
    pub results: OwnedFd, // read end: worker -> master
    pub inbox: Box<Frames>,
    pub inflight: VecDeque<(usize, u32)>, // (task, attempt), in the order the worker runs them
    pub done: u64,
}

impl Worker {
    pub fn new(pid: Pid, tasks: OwnedFd, results: OwnedFd, depth: usize) -> Worker {
        let (inbox, inflight) = (Box::default(), VecDeque::with_capacity(depth));
        Worker { pid, tasks, results, inbox, inflight, done: 0 }
    }

    /// Every whole result in the inbox, filed under its task id.
    pub fn take_results(&mut self, out: &mut MapResult) {
        while let Some(f) = self.inbox.pop() {
            self.inflight.pop_front(); // results come back in the order the tasks went
            self.done += 1;
            out.put(f.id as usize, Ok(f.value));
        }
    }
}
