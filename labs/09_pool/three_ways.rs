//! Section 5: the same job three ways (this process pool, a thread pool over a crossbeam
//! channel, rayon) and Python's `multiprocessing.Pool.map`, timed; what the book says
//! of the timings is shown as held or not on this run, never judged.

use super::pool::ProcPool;
use super::python::{self, Py};
use super::task::{work, Task};
use super::threads::{rayon_map, ThreadPool};
use super::{Args, PythonMode};
use proclab::measure::fmt_duration;
use proclab::{check, observe, Lab, Stopwatch};
use std::time::Duration;

impl ThreadPool {
    // ANCHOR: threadpool
    pub fn start(n: usize) -> ThreadPool {
        let (task_tx, task_rx) = crossbeam::channel::unbounded::<(usize, Task)>();
        let (res_tx, res_rx) = crossbeam::channel::unbounded();
        let threads = (0..n)
            .map(|_| {
                let (rx, tx) = (task_rx.clone(), res_tx.clone());
                std::thread::spawn(move || {
                    for (id, t) in rx {
                        // Whichever thread is free takes the next task.
                        let _ = tx.send((id, work(t.x, t.rounds)));
                    }
                })
            })
            .collect();
        ThreadPool { tasks: Some(task_tx), results: res_rx, threads }
    }
    // ANCHOR_END: threadpool
}

/// The fastest wall time of `reps` runs of `f` (a busy machine only ever adds time),
/// and the last run's results.
fn fastest(reps: usize, mut f: impl FnMut() -> Vec<u64>) -> (Duration, Vec<u64>) {
    let (mut best, mut last) = (Duration::MAX, Vec::new());
    for _ in 0..reps {
        let sw = Stopwatch::start();
        last = f();
        best = best.min(sw.elapsed());
    }
    (best, last)
}

fn held_word(held: bool) -> &'static str {
    if held {
        "held on this run"
    } else {
        "did NOT hold on this run"
    }
}

pub fn run(lab: &mut Lab, pool: &mut ProcPool, args: &Args) {
    let n = args.workers as usize;
    let threads = ThreadPool::start(n);
    let rayon = rayon::ThreadPoolBuilder::new().num_threads(n).build();
    let rayon = rayon.unwrap_or_else(|e| {
        proclab::die(&format!("rayon pool: {e}"), nix::errno::Errno::EAGAIN)
    });
    let cpus = std::thread::available_parallelism().map_or(1, |c| c.get());
    let parallel = n.min(cpus) as f64; // how many CPUs the pools can use at once
    let tiny: Vec<Task> = (0..args.tasks as u64).map(Task::tiny).collect();
    let heavy: Vec<Task> = (0..64).map(Task::heavy).collect();
    let (mut rows, mut per_task, mut agree) = (Vec::new(), Vec::new(), true);
    for (label, tasks) in [("tiny", &tiny), ("heavy", &heavy)] {
        // ANCHOR: three
        let (serial, want) =
            fastest(3, || tasks.iter().map(|t| work(t.x, t.rounds)).collect());
        let (procs, a) = fastest(3, || pool.map(tasks).values());
        let (thr, b) = fastest(3, || threads.map(tasks));
        let (ray, c) = fastest(3, || rayon_map(&rayon, tasks));
        // ANCHOR_END: three
        agree &= a == want && b == want && c == want;
        let count = tasks.len() as f64;
        let us = |wall: Duration| wall.as_secs_f64() / count * 1e6;
        per_task.push([us(procs), us(thr), us(ray)]);
        let names = ["serial", "process pool", "thread pool (crossbeam)", "rayon"];
        for (name, wall) in names.into_iter().zip([serial, procs, thr, ray]) {
            // The hand-off cost: what the pool adds to the compute spread over the CPUs.
            let overhead = us(wall) - us(serial) / parallel;
            let overhead = match name {
                "serial" => "-".to_string(),
                _ => format!("{:.3}", overhead.max(0.0)),
            };
            let per = format!("{:.3}", us(wall));
            let cells = [
                name,
                label,
                &tasks.len().to_string(),
                &fmt_duration(wall),
                &per,
                &overhead,
            ];
            rows.push(cells.map(String::from).to_vec());
        }
    }
    let py = match args.python {
        PythonMode::Never => Py::Skipped(
            "--python never: skipped (the verdict does not depend on it)".into(),
        ),
        PythonMode::Auto => match python::spawn(tiny.len(), n) {
            Err(py) => py,
            Ok(child) => {
                let pid = child.id() as i32;
                observe!(
                    lab,
                    "python_started",
                    "python3 {pid} runs book/scripts/pool_mp.py",
                    pid
                );
                python::collect(child)
            }
        },
    };
    let want_sum = tiny.iter().fold(0u64, |s, t| s.wrapping_add(t.expected()));
    python_row(lab, &py, per_task[0][0], (tiny.len(), n, want_sum), &mut rows);
    held(lab, per_task[0], per_task[1]);
    let headers = [
        "pool",
        "work",
        "tasks",
        "wall (fastest of 3)",
        "µs per task",
        "overhead µs per task",
    ];
    lab.table("three_ways", &headers, &rows);
    check!(lab, "three_ways_agree", agree,
        "the process pool, the thread pool and rayon returned the serial results, tiny and heavy");
}

/// The Python observation, and its row when it was measured.
fn python_row(
    lab: &mut Lab,
    py: &Py,
    rust_per_task_us: f64,
    (tasks, workers, want_sum): (usize, usize, u64),
    rows: &mut Vec<Vec<String>>,
) {
    let (python_per_task_us, seconds, checksum, version) = match py {
        Py::Measured { per_task_us, seconds, checksum, version } => {
            (*per_task_us, *seconds, *checksum, version)
        }
        Py::Skipped(why) | Py::Failed(why) => {
            let status =
                if matches!(py, Py::Skipped(_)) { "skipped" } else { "failed" };
            return observe!(
                lab,
                "python",
                "Python comparison {status}: {why}",
                status,
                why
            );
        }
    };
    let per = format!("{python_per_task_us:.3}");
    let wall = fmt_duration(Duration::from_secs_f64(seconds));
    let name = format!("python {version} Pool.map chunksize=1");
    rows.push(vec![name, "tiny".into(), tasks.to_string(), wall, per.clone(), per]);
    let same_results = checksum == want_sum;
    let ratio = python_per_task_us / rust_per_task_us.max(1e-9);
    let held = rust_per_task_us < python_per_task_us;
    let (same, word) =
        (if same_results { "same" } else { "DIFFERENT" }, held_word(held));
    observe!(lab, "python",
        "Python {version} Pool.map(chunksize=1): {python_per_task_us:.2} µs per tiny task (one run); this process pool: {rust_per_task_us:.2} µs (fastest of 3), {ratio:.1}x less; {same} results; cheaper than Python: {word}",
        status = "measured", python_per_task_us, rust_per_task_us, ratio, held, same_results, tasks, workers);
}

/// What the book says of the timings: µs per task of the process pool, the thread
/// pool and rayon, on tiny then heavy tasks.
fn held(lab: &mut Lab, tiny: [f64; 3], heavy: [f64; 3]) {
    let [process_pool_us, thread_pool_us, rayon_us] = tiny;
    let held = rayon_us < thread_pool_us && thread_pool_us < process_pool_us;
    let word = held_word(held);
    observe!(lab, "hand_off_order",
        "tiny tasks, µs per task: rayon {rayon_us:.3} < thread pool {thread_pool_us:.3} < process pool {process_pool_us:.3}: {word}",
        held, process_pool_us, thread_pool_us, rayon_us);
    let spread = |t: [f64; 3]| {
        let max = t.iter().cloned().fold(0.0, f64::max);
        max / t.iter().cloned().fold(f64::MAX, f64::min).max(1e-9)
    };
    let (tiny_spread, heavy_spread) = (spread(tiny), spread(heavy));
    let held = heavy_spread < tiny_spread;
    let word = held_word(held);
    observe!(lab, "heavy_closer",
        "slowest pool / fastest pool: {heavy_spread:.2}x on heavy tasks, {tiny_spread:.1}x on tiny ones; closer on heavy tasks: {word}",
        held, tiny_spread, heavy_spread);
}
