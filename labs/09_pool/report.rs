//! The pool lab's reporting: each observation as JSON fields and a human line, the tables,
//! and the timing of section 5. The lab file decides what is checked; this only says it.

use super::books::{MapResult, Replacement, Worker};
use super::python::Py;
use super::wire::MSG;
use nix::unistd::Pid;
use proclab::measure::fmt_duration;
use proclab::{procfacts, Lab, Status, Stopwatch};
use serde_json::json;
use std::time::Duration;

pub fn worker(lab: &mut Lab, pid: i32, ppid: i32, state: char, wchan: &str) {
    lab.observe(
        "worker",
        json!({"pid": pid, "ppid": ppid, "state": state.to_string(), "wchan": wchan}),
        format_args!(
            "worker {pid}: ppid {ppid}, state {}, waiting in {wchan}",
            procfacts::state_name(state)
        ),
    );
}

pub fn map(
    lab: &mut Lab,
    got: &MapResult,
    inputs: usize,
    right: usize,
    lost: usize,
    took: Duration,
) {
    lab.observe(
        "map",
        json!({"inputs": inputs, "results": got.results.len(), "right": right, "lost": lost, "duplicates": got.duplicates, "ms": took.as_secs_f64() * 1e3}),
        format_args!(
            "{inputs} inputs -> {} results, {right} equal to the serial answer at their own index, {lost} lost, {} duplicates, in {}",
            got.results.len(),
            got.duplicates,
            fmt_duration(took)
        ),
    );
}

pub fn on_demand(
    lab: &mut Lab,
    slow_task: usize,
    slow: Duration,
    rank: usize,
    tasks: usize,
) {
    lab.observe(
        "on_demand",
        json!({"slow_task": slow_task, "slow_ms": slow.as_millis() as u64, "finished_before_it": rank, "tasks": tasks}),
        format_args!(
            "task {slow_task} slept {} ms; {rank} of the other {} results arrived before it",
            slow.as_millis(),
            tasks - 1
        ),
    );
}

pub fn tasks_per_worker(lab: &mut Lab, workers: &[Worker], tasks: usize) {
    let done: Vec<(Pid, u64)> = workers.iter().map(|w| (w.pid, w.done)).collect();
    shares(
        lab,
        "tasks_per_worker",
        ["worker pid", "tasks", "share"],
        &done,
        tasks as u64,
    );
}

/// A table of how many tasks (or messages) each process took, and its share of `total`.
fn shares(
    lab: &mut Lab,
    kind: &str,
    headers: [&str; 3],
    counts: &[(Pid, u64)],
    total: u64,
) {
    let rows: Vec<Vec<String>> = (counts.iter())
        .map(|(pid, n)| {
            let share = format!("{:.1}%", 100.0 * *n as f64 / total as f64);
            vec![pid.to_string(), n.to_string(), share]
        })
        .collect();
    lab.table(kind, &headers, &rows);
}

pub fn killed(lab: &mut Lab, kills: &[(i32, usize, u32, char)]) {
    for &(pid, task, attempt, state) in kills {
        lab.observe(
            "killed",
            json!({"pid": pid, "task": task, "attempt": attempt, "state": state.to_string()}),
            format_args!("SIGKILL to worker {pid} while it ran task {task} (attempt {attempt}, state {state})"),
        );
    }
}

/// A dead worker: how it died, what became of its task, and who took its slot.
pub fn replacement(lab: &mut Lab, r: &Replacement) {
    let Replacement(slot, old, status, running, new, ppid) = r;
    let (task, attempt) = (running.map(|t| t.0), running.map(|t| t.1));
    lab.observe(
        "died",
        json!({"slot": slot, "pid": old.as_raw(), "status": status, "task": task, "attempt": attempt}),
        format_args!(
            "EOF on slot {slot}'s result pipe; waitpid({old}): {status}; it was running task {}",
            task.map_or("none".into(), |t| t.to_string())
        ),
    );
    match running {
        Some((task, 1)) => lab.observe(
            "retried",
            json!({"task": task, "attempt": 2}),
            format_args!("task {task} put back first in the queue for attempt 2"),
        ),
        Some((task, attempts)) => lab.observe(
            "gave_up",
            json!({"task": task, "attempts": attempts}),
            format_args!("task {task} killed its worker on {attempts} attempts: given up, not retried again"),
        ),
        None => {}
    }
    lab.observe(
        "replaced",
        json!({"slot": slot, "new_pid": new.as_raw(), "old_pid": old.as_raw(), "ppid": ppid}),
        format_args!("slot {slot}: worker {old} replaced by a new fork, {new} (ppid {ppid})"),
    );
}

pub fn retry_outcome(lab: &mut Lab, got: &MapResult, once_ok: bool) {
    let said = |r: Option<Result<u64, u32>>| match r {
        Some(Ok(v)) => format!("returned {v}"),
        Some(Err(n)) => format!("given up after {n} attempts"),
        None => "no outcome (lost)".into(),
    };
    let (t7, t11) = (said(got.results[7]), said(got.results[11]));
    lab.observe(
        "retry_outcome",
        json!({"once_ok": once_ok, "always_attempts": got.results[11].and_then(|r| r.err())}),
        format_args!("task 7 (killed once) {t7}; task 11 (killed every time) {t11}"),
    );
}

pub fn map_after_crash(
    lab: &mut Lab,
    got: &MapResult,
    inputs: usize,
    right: usize,
    lost: usize,
) {
    lab.observe(
        "map_after_crash",
        json!({"inputs": inputs, "results": got.results.len(), "right": right, "lost": lost, "duplicates": got.duplicates, "failed": 1}),
        format_args!(
            "{inputs} inputs -> {} results: {right} right, 1 given up, {lost} lost, {} duplicates",
            got.results.len(),
            got.duplicates
        ),
    );
}

/// The queue seen from outside while it is full: (bytes queued, capacity, messages sent).
pub fn back_pressure(
    lab: &mut Lab,
    producer: Pid,
    state: char,
    wchan: &str,
    (queued, cap, sent): (u64, u64, u64),
) {
    let msg = MSG as u64;
    lab.observe(
        "back_pressure",
        json!({"producer_pid": producer.as_raw(), "state": state.to_string(), "wchan": wchan, "queued_bytes": queued, "capacity": cap, "sent": sent, "capacity_messages": cap / msg}),
        format_args!(
            "queue of {cap} bytes holds {queued} ({} messages); producer {producer} has sent {sent} and is in state {state}, asleep in {wchan}",
            queued / msg
        ),
    );
}

pub fn producer_blocked(
    lab: &mut Lab,
    still: u64,
    blocked_ns: u64,
    closed_ns: u64,
    status: Status,
    gate: isize,
) {
    let (closed, blocked) =
        (Duration::from_nanos(closed_ns), Duration::from_nanos(blocked_ns));
    lab.observe(
        "producer_blocked",
        json!({"sent_while_held": still, "longest_write_us": blocked_ns / 1000, "held_full_us": closed_ns / 1000, "status": status, "gate_bytes": gate}),
        format_args!(
            "the queue stayed full {} and the producer had still sent {still}; its longest write(2) blocked for {}; then it {status}",
            fmt_duration(closed),
            fmt_duration(blocked)
        ),
    );
}

pub fn consumer_exit(
    lab: &mut Lab,
    pid: Pid,
    status: Status,
    pill: u32,
    taken: u64,
) {
    let pill_text = if pill == 1 { "read its pill" } else { "read NO pill" };
    lab.observe(
        "consumer_exit",
        json!({"pid": pid.as_raw(), "status": status, "pill": pill, "taken": taken}),
        format_args!("consumer {pid} took {taken} messages, {pill_text}; waitpid: {status}"),
    );
}

pub fn queue_totals(
    lab: &mut Lab,
    sent: u64,
    taken: u64,
    seq_sum: u64,
    want_sum: u64,
    torn: u32,
) {
    lab.observe(
        "queue_totals",
        json!({"sent": sent, "taken": taken, "seq_sum": seq_sum, "want_seq_sum": want_sum, "torn": torn}),
        format_args!(
            "{sent} messages sent, {taken} taken, sum of sequence numbers {seq_sum} (want {want_sum}), {torn} torn reads"
        ),
    );
}

/// Messages per consumer, as a table and as the busiest against the least busy.
pub fn fairness(lab: &mut Lab, taken: &[(Pid, u64)], sent: u64) {
    shares(
        lab,
        "tasks_per_consumer",
        ["consumer pid", "messages", "share"],
        taken,
        sent,
    );
    let most = taken.iter().map(|t| t.1).max().unwrap_or(0);
    let least = taken.iter().map(|t| t.1).min().unwrap_or(0);
    let (consumers, even) = (taken.len(), sent / taken.len() as u64);
    lab.observe(
        "fairness",
        json!({"most": most, "least": least, "consumers": consumers, "even_share": even}),
        format_args!("the busiest consumer took {most}, the least busy {least}; an even split is {even}"),
    );
}

/// The fastest wall time of `reps` runs of `f` (a busy machine only ever adds time), and
/// the last run's results.
pub fn timed(reps: usize, mut f: impl FnMut() -> Vec<u64>) -> (Duration, Vec<u64>) {
    let mut fastest = Duration::MAX;
    let mut last = Vec::new();
    for _ in 0..reps {
        let sw = Stopwatch::start();
        last = f();
        fastest = fastest.min(sw.elapsed());
    }
    (fastest, last)
}

/// The table of section 5: wall time, cost per task, and the hand-off overhead per task.
pub struct ThreeWays {
    rows: Vec<Vec<String>>,
    /// How many CPUs the pools can really use at once.
    parallel: f64,
    /// The process pool's cost per tiny task, in µs, to compare with Python's.
    proc_tiny_us: f64,
    /// µs per task of the process pool, the thread pool and rayon: tiny, then heavy.
    per_task: Vec<[f64; 3]>,
}

impl ThreeWays {
    pub fn new(workers: usize) -> ThreeWays {
        let cpus =
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        ThreeWays {
            rows: Vec::new(),
            parallel: workers.min(cpus) as f64,
            proc_tiny_us: 0.0,
            per_task: Vec::new(),
        }
    }

    /// The rows of one batch: `walls` is serial, process pool, thread pool, rayon.
    pub fn add(&mut self, label: &str, tasks: usize, walls: [Duration; 4]) {
        let names = ["serial", "process pool", "thread pool (crossbeam)", "rayon"];
        let (n, serial) = (tasks as f64, walls[0].as_secs_f64());
        let us = |w: Duration| w.as_secs_f64() / n * 1e6;
        self.per_task.push([us(walls[1]), us(walls[2]), us(walls[3])]);
        for (name, wall) in names.into_iter().zip(walls) {
            let per_task = wall.as_secs_f64() / n * 1e6;
            // The hand-off cost: what the pool adds on top of the compute spread over the CPUs.
            let overhead = (wall.as_secs_f64() - serial / self.parallel) / n * 1e6;
            if name == "process pool" && label == "tiny" {
                self.proc_tiny_us = per_task;
            }
            let overhead = if name == "serial" {
                "-".into()
            } else {
                format!("{:.3}", overhead.max(0.0))
            };
            let row = [
                name,
                label,
                &tasks.to_string(),
                &fmt_duration(wall),
                &format!("{per_task:.3}"),
                &overhead,
            ];
            self.rows.push(row.map(String::from).to_vec());
        }
    }

    /// The Python observation, and its row when it was measured.
    pub fn python(
        &mut self,
        lab: &mut Lab,
        py: &Py,
        tasks: usize,
        workers: usize,
        want_sum: u64,
    ) {
        let (per_task_us, seconds, checksum, version) = match py {
            Py::Measured { per_task_us, seconds, checksum, version } => {
                (*per_task_us, *seconds, *checksum, version)
            }
            Py::Skipped(why) | Py::Failed(why) => {
                let status =
                    if matches!(py, Py::Skipped(_)) { "skipped" } else { "failed" };
                return lab.observe(
                    "python",
                    json!({"status": status, "why": why}),
                    format_args!("Python comparison {status}: {why}"),
                );
            }
        };
        let per_task = format!("{per_task_us:.3}");
        self.rows.push(vec![
            format!("python {version} Pool.map chunksize=1"),
            "tiny".into(),
            tasks.to_string(),
            fmt_duration(Duration::from_secs_f64(seconds)),
            per_task.clone(),
            per_task,
        ]);
        let (rust_us, same) = (self.proc_tiny_us, checksum == want_sum);
        let ratio = per_task_us / rust_us.max(1e-9);
        let held = rust_us < per_task_us;
        lab.observe(
            "python",
            json!({"status": "measured", "python_per_task_us": per_task_us, "rust_per_task_us": rust_us, "ratio": ratio, "held": held, "same_results": same, "tasks": tasks, "workers": workers}),
            format_args!(
                "Python {version} Pool.map(chunksize=1): {per_task_us:.2} µs per tiny task (one run); this process pool: {rust_us:.2} µs (fastest of 3), {ratio:.1}x less; {} results; cheaper than Python: {}",
                if same { "same" } else { "DIFFERENT" },
                held_word(held)
            ),
        );
    }

    /// What the book says of the timings, each reported as held or not on this run (a
    /// busy machine can invert a timing: it is shown, not judged).
    pub fn held(&self, lab: &mut Lab) {
        let [tiny, heavy] = [self.per_task[0], self.per_task[1]];
        let [procs, threads, rayon] = tiny;
        let held = rayon < threads && threads < procs;
        lab.observe(
            "hand_off_order",
            json!({"held": held, "process_pool_us": procs, "thread_pool_us": threads, "rayon_us": rayon}),
            format_args!("tiny tasks, µs per task: rayon {rayon:.3} < thread pool {threads:.3} < process pool {procs:.3}: {}", held_word(held)),
        );
        let spread = |t: [f64; 3]| {
            let max = t.iter().cloned().fold(0.0, f64::max);
            max / t.iter().cloned().fold(f64::MAX, f64::min).max(1e-9)
        };
        let (tiny_spread, heavy_spread) = (spread(tiny), spread(heavy));
        let held = heavy_spread < tiny_spread;
        lab.observe(
            "heavy_closer",
            json!({"held": held, "tiny_spread": tiny_spread, "heavy_spread": heavy_spread}),
            format_args!("slowest pool / fastest pool: {heavy_spread:.2}x on heavy tasks, {tiny_spread:.1}x on tiny ones; closer on heavy tasks: {}", held_word(held)),
        );
    }

    pub fn table(&self, lab: &mut Lab) {
        let headers = [
            "pool",
            "work",
            "tasks",
            "wall (fastest of 3)",
            "µs per task",
            "overhead µs per task",
        ];
        lab.table("three_ways", &headers, &self.rows);
    }
}

pub fn python_started(lab: &mut Lab, pid: Pid) {
    lab.observe(
        "python_started",
        json!({"pid": pid.as_raw()}),
        format_args!("python3 {pid} runs book/scripts/pool_mp.py"),
    );
}

pub fn worker_exit(
    lab: &mut Lab,
    pid: Pid,
    status: Status,
    in_time: bool,
    gone: bool,
) {
    let late =
        if in_time { "" } else { " (still running at the deadline: killed)" };
    lab.observe(
        "worker_exit",
        json!({"pid": pid.as_raw(), "status": status, "in_time": in_time, "gone": gone}),
        format_args!(
            "waitpid({pid}): {status}{late}; /proc/{pid} {}",
            if gone { "is gone" } else { "still exists" }
        ),
    );
}

fn held_word(held: bool) -> &'static str {
    if held {
        "held on this run"
    } else {
        "did NOT hold on this run"
    }
}
