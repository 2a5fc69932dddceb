//! The master's records: the board in shared memory (who runs what), each worker as the
//! master sees it, what `map` returns (one outcome per input, filed in input order), each
//! worker that died (`reap_by`, `reap_or_kill`: the harness's bounded waitpid).

use super::wire::Frames;
use nix::unistd::Pid;
use proclab::{OrDie, Status};
use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

pub const MAX_WORKERS: usize = 64;

/// The process pool: the master's side of it. `start` (section 1), `map` (section 2),
/// `replace` (section 3) and `shutdown` (section 6) are in the files of their sections.
pub struct ProcPool {
    pub master: i32,
    pub workers: Vec<Worker>,
    pub board: &'static Board,
    pub depth: usize,
    /// How long `map` waits for any result, and `shutdown` for a worker's exit.
    pub deadline: Duration,
    /// False only in a test that removes the retry of a killed worker's task.
    pub retry: bool,
    /// True only in a test that hands out tasks in a fixed split (`static_split`).
    pub static_split: bool,
    pub replacements: Vec<Replacement>,
}

/// The tasks waiting to be handed out: (task, attempt), the next one first.
pub type Queue = VecDeque<(usize, u32)>;

/// Who is working on what, in shared memory: one word per worker, [`pack`]ed, so that a
/// reader never pairs a pid with another worker's task.
pub struct Board {
    pub slots: [AtomicU64; MAX_WORKERS],
}

/// `pid << 32 | (task + 1) << 4 | attempt`, or `pid << 32` when idle (`task` None).
pub fn pack(pid: u32, task: Option<u64>, attempt: u32) -> u64 {
    let task = task.map_or(0, |t| (t + 1) << 4 | u64::from(attempt & 0xf));
    u64::from(pid) << 32 | task
}

/// The pid in a board word, and the (task, attempt) it runs, if any.
pub fn unpack(word: u64) -> (i32, Option<(usize, u32)>) {
    let pid = (word >> 32) as i32;
    let task = (word & 0xffff_fff0) >> 4;
    (pid, (task > 0).then(|| (task as usize - 1, (word & 0xf) as u32)))
}

/// Anonymous shared memory holding a zeroed `T` (atomics only), seen by every child
/// forked after it. Never unmapped: it lives as long as the lab.
pub fn shared<T>() -> &'static T {
    use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};
    let len = std::num::NonZeroUsize::new(std::mem::size_of::<T>())
        .expect("non-zero size");
    let prot = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
    // SAFETY: a fresh zero-filled mapping; T is made of atomics, valid when zero.
    let p = unsafe { mmap_anonymous(None, len, prot, MapFlags::MAP_SHARED) }
        .or_die("mmap");
    // SAFETY: the mapping is large enough, page-aligned, zeroed and never unmapped.
    unsafe { &*p.as_ptr().cast::<T>() }
}

/// One worker as the master sees it.
pub struct Worker {
    pub pid: Pid,
    pub tasks: OwnedFd,   // write end: master -> worker
    pub results: OwnedFd, // read end: worker -> master
    pub inbox: Box<Frames>,
    pub inflight: VecDeque<(usize, u32)>, // (task, attempt), in the order it runs them
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
            if let Some(by) = out.by.get_mut(f.id as usize) {
                *by = self.pid.as_raw(); // who ran it
            }
        }
    }
}

/// A task's outcome: its value, or the number of attempts after which it was given up.
pub type Outcome = Result<u64, u32>;

/// What `map` returns: one outcome per input, in input order (None: lost).
pub struct MapResult {
    pub results: Vec<Option<Outcome>>,
    /// Results for a task that already had one.
    pub duplicates: usize,
    /// For each task, how many results had arrived before its own.
    pub rank: Vec<usize>,
    /// For each task, the pid of the worker whose result was filed (0: none).
    pub by: Vec<i32>,
    /// True if no result came for the pool's deadline: a task was lost or a worker stuck.
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
            by: vec![0; n],
            timed_out: false,
            left: n,
            arrived: 0,
        }
    }

    /// File the outcome of task `id` at its own index: that is what puts results in order.
    pub fn put(&mut self, id: usize, outcome: Outcome) {
        let Some(slot) = self.results.get_mut(id) else {
            return; // a stray result (of an earlier map that timed out): not ours
        };
        if slot.is_some() {
            self.duplicates += 1;
            return;
        }
        *slot = Some(outcome);
        self.rank[id] = self.arrived;
        self.arrived += 1;
        self.left -= 1;
    }

    /// The values in input order (0 for a task with no value).
    pub fn values(&self) -> Vec<u64> {
        let value = |r: &Option<Outcome>| r.and_then(|o| o.ok()).unwrap_or(0);
        self.results.iter().map(value).collect()
    }
}

/// A worker that died during a map, and the one that took its slot.
#[derive(Clone, Copy, Debug)]
pub struct Replacement {
    pub slot: usize,
    pub old: Pid,
    /// What `waitpid` said of the old worker.
    pub status: Status,
    /// The (task, attempt) it was running, from the board.
    pub running: Option<(usize, u32)>,
    /// True if that task was put back in the queue for another attempt.
    pub retried: bool,
    pub new: Pid,
    /// The new worker's ppid, from /proc.
    pub ppid: i32,
    /// When it was replaced, in lab time.
    pub at_us: u64,
}

pub use proclab::wait::{reap_by, reap_or_kill};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_board_word_keeps_pid_task_and_attempt_together() {
        assert_eq!(unpack(pack(4242, Some(0), 1)), (4242, Some((0, 1))));
        assert_eq!(unpack(pack(7, Some(199_999), 2)), (7, Some((199_999, 2))));
        assert_eq!(unpack(pack(i32::MAX as u32, None, 0)), (i32::MAX, None));
    }

    #[test]
    fn map_files_each_outcome_once_at_its_index() {
        let mut m = MapResult::new(3);
        m.put(2, Ok(20));
        m.put(0, Err(2));
        m.put(2, Ok(21)); // a second result for task 2
        m.put(9, Ok(90)); // not a task of this map
        assert_eq!(m.results, vec![Some(Err(2)), None, Some(Ok(20))]);
        assert_eq!((m.duplicates, m.left, m.rank[0]), (1, 1, 1));
        assert_eq!(m.values(), vec![0, 0, 20]);
    }
}
