//! Section 2: `map` hands tasks out on demand, at most `--depth` per worker, and files
//! each result at its task's index: one result per input, in order.

use super::pool::{MapResult, ProcPool, Queue};
use super::task::{Mode, Task, SLOW};
use super::wire::{pollin, Frame, FRAME};
use nix::unistd::Pid;
use proclab::fdio::write_all;
use proclab::measure::fmt_duration;
use proclab::{check, observe, Deadline, Lab, Stopwatch};

impl ProcPool {
    /// Top worker `w` up to `depth` tasks in flight, from the front of `queue`, in one
    /// write.
    fn refill(&mut self, w: usize, tasks: &[Task], queue: &mut Queue) {
        let split =
            self.static_split.then_some((w, self.workers.len(), tasks.len()));
        let worker = &mut self.workers[w];
        let mut buf = [0u8; FRAME * 64];
        let mut len = 0;
        while worker.inflight.len() < self.depth {
            let Some((id, attempt)) = next_task(queue, split) else { break };
            Frame::task(id, attempt, &tasks[id]).encode(&mut buf[len..len + FRAME]);
            len += FRAME;
            worker.inflight.push_back((id, attempt));
        }
        // EPIPE if the worker just died: its tasks come back when its EOF is seen.
        let _ = write_all(&worker.tasks, &buf[..len]);
    }

    // ANCHOR: map
    /// Run every task; one outcome per task, in input order.
    pub fn map(&mut self, tasks: &[Task]) -> MapResult {
        let mut out = MapResult::new(tasks.len());
        let mut queue: Queue = (0..tasks.len()).map(|id| (id, 1)).collect();
        let mut quiet = Deadline::after(self.deadline); // no result by then: stuck
        while out.left > 0 {
            for w in 0..self.workers.len() {
                self.refill(w, tasks, &mut queue); // on demand: `depth` at most
            }
            let mut fds: Vec<_> =
                self.workers.iter().map(|w| pollin(&w.results)).collect();
            let (n, ms) = (fds.len() as libc::nfds_t, quiet.poll_ms(100));
            // SAFETY: a live array of pollfd. Sleeps until results, EOF or `ms`.
            if unsafe { libc::poll(fds.as_mut_ptr(), n, ms) } <= 0 {
                out.timed_out = quiet.expired(); // a task lost, or a worker stuck
                if out.timed_out {
                    break;
                } else {
                    continue;
                } // EINTR, or a pause
            }
            // ANCHOR_END: map
            // ANCHOR: map_read
            quiet = Deadline::after(self.deadline);
            for w in (0..fds.len()).filter(|&w| fds[w].revents != 0) {
                let worker = &mut self.workers[w];
                if worker.inbox.fill(&worker.results) > 0 {
                    worker.take_results(&mut out); // filed by task id: in order
                } else {
                    self.replace(w, &mut queue, &mut out); // EOF: the worker died
                }
            }
        }
        // ANCHOR_END: map_read
        out
    }
}

/// The next task to hand out: the front of the queue (on demand), or, with the test
/// switch `static_split`, the first left of worker `w`'s fixed share (`w` of `n` equal
/// parts of the `len` tasks, decided in advance whatever each task costs).
fn next_task(
    queue: &mut Queue,
    split: Option<(usize, usize, usize)>,
) -> Option<(usize, u32)> {
    let Some((w, n, len)) = split else { return queue.pop_front() };
    let at = queue.iter().position(|&(id, _)| id * n / len.max(1) == w)?;
    queue.remove(at)
}

/// How many outcomes equal the serial answer at their own index, and how many are missing.
pub fn score(tasks: &[Task], got: &MapResult) -> (usize, usize) {
    let right = (tasks.iter().zip(&got.results))
        .filter(|(t, r)| **r == Some(Ok(t.expected())))
        .count();
    let lost = got.results.iter().filter(|r| r.is_none()).count();
    (right, lost)
}

/// A map that heard nothing for the deadline left tasks in a stuck worker: the pool
/// cannot be trusted for the sections after it, so the lab ends here (exit 3).
pub fn stop_if_stuck(lab: &mut Lab, got: &MapResult, pool: &ProcPool) {
    if got.timed_out {
        let (ms, left) = (pool.deadline.as_millis(), got.left);
        lab.not_observed(
            "map_finished",
            format_args!("map heard nothing for {ms} ms with {left} tasks left: a task was lost or a worker is stuck"),
        );
    }
}

/// Rows of (pid, how many, share of `total`) for a table.
pub fn share_rows(counts: &[(Pid, u64)], total: u64) -> Vec<Vec<String>> {
    let row = |(pid, n): &(Pid, u64)| {
        let share = format!("{:.1}%", 100.0 * *n as f64 / total as f64);
        vec![pid.to_string(), n.to_string(), share]
    };
    counts.iter().map(row).collect()
}

/// Section 2: map 1000 tiny tasks, one of which sleeps.
pub fn run(lab: &mut Lab, pool: &mut ProcPool) {
    // ANCHOR: exact
    let mut tasks: Vec<Task> = (0..1000).map(Task::tiny).collect();
    tasks[3].mode = Mode::Slow; // one task sleeps: on demand, the others carry on
    let sw = Stopwatch::start();
    let got = pool.map(&tasks);
    let took = sw.elapsed();
    // Each outcome against the serial answer at its own index.
    let (right, lost) = score(&tasks, &got);
    // ANCHOR_END: exact
    let (inputs, duplicates, took_text) =
        (tasks.len(), got.duplicates, fmt_duration(took));
    observe!(
        lab,
        "map",
        "{inputs} inputs -> {results} results, {right} equal to the serial answer at their own index, {lost} lost, {duplicates} duplicates, in {took_text}",
        inputs,
        results = got.results.len(),
        right,
        lost,
        duplicates,
        took_us = took.as_micros() as u64
    );
    check!(lab, "map_exact", right == inputs && lost == 0 && duplicates == 0,
        "map returned exactly one result per input, in input order: no loss, no duplicate");
    stop_if_stuck(lab, &got, pool);
    // Who ran the slow task, and how many tasks that worker did in all.
    let done: Vec<(Pid, u64)> =
        pool.workers.iter().map(|w| (w.pid, w.done)).collect();
    let (others, rank, slow_worker_pid) = (inputs - 1, got.rank[3], got.by[3]);
    let slow_worker_tasks =
        (done.iter().find(|(p, _)| p.as_raw() == slow_worker_pid))
            .map_or(inputs, |&(_, n)| n as usize);
    let even_share = inputs as f64 / done.len() as f64; // a static split's
    observe!(
        lab,
        "on_demand",
        "task {slow_task} slept {slow_ms} ms in worker {slow_worker_pid}; {finished_before_it} of the other {others} results arrived before it, and that worker did {slow_worker_tasks} tasks in all (an even split: {even_share:.0} each)",
        slow_task = 3,
        slow_ms = SLOW.as_millis() as u64,
        slow_worker_pid,
        finished_before_it = rank,
        slow_worker_tasks,
        even_share,
        tasks = inputs
    );
    // The others took its share: at most half an even split's (a static split gives
    // it exactly that, and load, which slows every worker alike, cannot double it).
    let took_share = 2.0 * slow_worker_tasks as f64 <= even_share;
    check!(lab, "on_demand", rank >= inputs / 2 && took_share,
        "a slow task held up only its own worker: most later tasks finished before it, and the other workers took its share of the tasks");
    let rows = share_rows(&done, inputs as u64);
    lab.table("tasks_per_worker", &["worker pid", "tasks", "share"], &rows);
}
