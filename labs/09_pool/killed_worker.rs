//! Section 3: a worker killed in the middle of a task. The master sees the EOF on its
//! result pipe, reaps it, forks a replacement into its slot and retries the task once.

use super::map::{score, stop_if_stuck};
use super::pool::{
    reap_or_kill, unpack, Board, MapResult, ProcPool, Queue, Replacement,
};
use super::task::{hangs, Mode, Task};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpid, Pid};
use proclab::procfacts::{self, State};
use proclab::report::lab_time_us;
use proclab::{check, observe, Lab};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

impl ProcPool {
    /// Worker `w` died: reap it, put its tasks back (the one it was running, read
    /// from the board in shared memory: once) and fork a replacement into its slot.
    // ANCHOR: replace
    pub fn replace(&mut self, w: usize, queue: &mut Queue, out: &mut MapResult) {
        let old = self.workers[w].pid;
        let (status, _) = reap_or_kill(old, self.deadline);
        let (pid, running) = unpack(self.board.slots[w].load(Ordering::Acquire));
        let running = running.filter(|_| pid == old.as_raw()); // None: idle
        for t in std::mem::take(&mut self.workers[w].inflight).into_iter().rev() {
            if Some(t) != running {
                queue.push_front(t); // not started, or done but unsent: back
            }
        }
        let retried = self.retry && running.is_some_and(|(_, a)| a == 1);
        match running {
            Some((id, a)) if retried => queue.push_front((id, a + 1)), // first
            Some((id, a)) if a > 1 => out.put(id, Err(a)), // again: given up
            _ => {} // idle (or, in a test only, forgotten)
        }
        let worker = self.spawn(w); // a new process in the same slot
        let (slot, new) = (w, worker.pid);
        let ppid = procfacts::ppid(new.as_raw()).unwrap_or(0); // from /proc
        let at_us = lab_time_us(); // when (the report comes after the map)
        let r =
            Replacement { slot, old, status, running, retried, new, ppid, at_us };
        self.replacements.push(r);
        self.workers[w] = worker; // the old pipes are closed here
    }
    // ANCHOR_END: replace
}

/// A SIGKILL the killer sent.
struct Kill {
    pid: i32,
    task: usize,
    attempt: u32,
    state: State,
    /// When it was sent (lab time): reported only once the killer is joined.
    at_us: u64,
}

/// A thread of the master that watches the board, as an operator reads `ps`,
/// and sends SIGKILL to each worker it sees running a task marked to hang.
fn killer(
    board: &'static Board,
    tasks: Vec<Task>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Vec<Kill>> {
    std::thread::spawn(move || {
        let (mut kills, mut tried) = (Vec::new(), Vec::new());
        // ANCHOR: killer
        while !stop.load(Ordering::Acquire) {
            for word in &board.slots {
                let (pid, Some((task, attempt))) =
                    unpack(word.load(Ordering::Acquire))
                else {
                    continue;
                };
                if tasks.get(task).is_some_and(|t| hangs(t.mode, attempt))
                    && !tried.contains(&pid)
                {
                    tried.push(pid);
                    let (state, at_us) = (State::of(pid), lab_time_us());
                    if kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
                        kills.push(Kill { pid, task, attempt, state, at_us });
                    }
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        // ANCHOR_END: killer
        kills
    })
}

/// Section 3: map 200 tasks, two of them marked to hang, with the killer on watch.
pub fn run(lab: &mut Lab, pool: &mut ProcPool) {
    let mut tasks: Vec<Task> = (0..200).map(Task::tiny).collect();
    // Task 7 is killed on attempt 1 and fine on the retry; task 11 on both.
    (tasks[7].mode, tasks[11].mode) = (Mode::CrashOnce, Mode::CrashAlways);
    let stop = Arc::new(AtomicBool::new(false));
    let watch = killer(pool.board, tasks.clone(), stop.clone());
    let got = pool.map(&tasks);
    stop.store(true, Ordering::Release);
    let kills = watch.join().expect("killer thread");
    for k in &kills {
        let (pid, task, attempt, state) = (k.pid, k.task, k.attempt, k.state);
        observe!(lab, "killed",
            "SIGKILL to worker {pid} while it ran task {task} (attempt {attempt}, state {state})",
            pid, sent = "SIGKILL", task, attempt, state, at_us = k.at_us);
    }
    let me = getpid().as_raw();
    let mut replaced = 0;
    for r in pool.replacements.clone() {
        let (slot, old, status) = (r.slot, r.old.as_raw(), r.status);
        let (task, attempt) = (r.running.map(|t| t.0), r.running.map(|t| t.1));
        let running = task.map_or("none".into(), |t| t.to_string());
        observe!(lab, "died",
            "EOF on slot {slot}'s result pipe; waitpid({pid}): {status}; it was running task {running}",
            slot, pid = old, status, task, attempt, at_us = r.at_us);
        match r.running {
            Some((task, a)) if r.retried => observe!(lab, "retried",
                "task {task} put back first in the queue for attempt {attempt}", task, attempt = a + 1),
            Some((task, attempts)) if attempts > 1 => observe!(lab, "gave_up",
                "task {task} killed its worker on {attempts} attempts: given up, not retried again",
                task, attempts),
            _ => {}
        }
        let (new_pid, ppid) = (r.new.as_raw(), r.ppid);
        observe!(lab, "replaced",
            "slot {slot}: worker {old_pid} replaced by a new fork, {new_pid} (ppid {ppid})",
            slot, new_pid, old_pid = old, ppid, at_us = r.at_us);
        let was_killed = kills.iter().any(|k| k.pid == old);
        let by_sigkill = status.signal() == Some(Signal::SIGKILL);
        replaced +=
            (was_killed && by_sigkill && new_pid != old && ppid == me) as usize;
    }
    let n = kills.len();
    check!(lab, "worker_replaced", n > 0 && replaced == n,
        "each of the {n} killed workers was reaped with SIGKILL status and replaced by a new process");
    let said = |r: Option<Result<u64, u32>>| match r {
        Some(Ok(v)) => format!("returned {v}"),
        Some(Err(n)) => format!("given up after {n} attempts"),
        None => "no outcome (lost)".into(),
    };
    let (t7, t11) = (said(got.results[7]), said(got.results[11]));
    let once_ok = got.results[7] == Some(Ok(tasks[7].expected()));
    observe!(
        lab,
        "retry_outcome",
        "task 7 (killed once) {t7}; task 11 (killed every time) {t11}",
        once_ok,
        always_attempts = got.results[11].and_then(|r| r.err())
    );
    check!(lab, "retried_once", once_ok && got.results[11] == Some(Err(2)),
        "the task killed once succeeded on its retry; the task killed twice was given up after exactly 2 attempts");
    let (right, lost) = score(&tasks, &got);
    let (inputs, duplicates) = (tasks.len(), got.duplicates);
    observe!(lab, "map_after_crash",
        "{inputs} inputs -> {results} results: {right} right, {failed} given up, {lost} lost, {duplicates} duplicates",
        inputs, results = got.results.len(), right, lost, duplicates,
        failed = got.results.iter().filter(|r| matches!(r, Some(Err(_)))).count());
    check!(lab, "map_exact_after_crash", right == inputs - 1 && lost == 0 && duplicates == 0,
        "with workers killed mid-task, map still returned exactly one outcome per input, in order");
    stop_if_stuck(lab, &got, pool);
}
