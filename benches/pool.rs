//! The `pool` group: the same map three ways (the process pool of labs/09_pool/, started in
//! start.rs and mapped in map.rs; a thread pool over a crossbeam channel; rayon), on tiny
//! tasks (the hand-off cost) and on CPU-heavy tasks (the compute). One iteration maps a whole batch; the throughput is in tasks.
//! The pools are started once, outside the timed loop, as a server would.

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, Throughput,
};
use std::time::Duration;

// The lab's own code, so the bench measures the very pool the chapter shows.
#[allow(dead_code, unused_imports)] // the lab's unit tests are not built here
#[path = "../labs/09_pool/main.rs"]
mod lab;

use lab::task::Task;
use lab::threads::{rayon_map, ThreadPool};
use lab::ProcPool;

const WORKERS: usize = 4;
const DEPTH: usize = 8;

fn pool(c: &mut Criterion) {
    proclab::narrate::set_quiet(true); // the workers' "ready" lines would land in the bench output
    let mut procs = ProcPool::start(WORKERS, DEPTH, Duration::from_secs(20));
    let threads = ThreadPool::start(WORKERS);
    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(WORKERS)
        .build()
        .expect("rayon pool");
    let tiny: Vec<Task> = (0..1000).map(Task::tiny).collect();
    let heavy: Vec<Task> = (0..32).map(Task::heavy).collect();

    let mut g = c.benchmark_group("pool");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    for (load, tasks) in [("tiny", &tiny), ("heavy", &heavy)] {
        g.throughput(Throughput::Elements(tasks.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("process_pool", load),
            tasks,
            |b, t| b.iter(|| procs.map(t).results.len()),
        );
        g.bench_with_input(BenchmarkId::new("thread_pool", load), tasks, |b, t| {
            b.iter(|| threads.map(t).len())
        });
        g.bench_with_input(BenchmarkId::new("rayon", load), tasks, |b, t| {
            b.iter(|| rayon_map(&rayon, t).len())
        });
    }
    g.finish();
    for (pid, status, in_time) in procs.shutdown() {
        assert!(
            status.code() == Some(0) && in_time,
            "worker {pid} ended cleanly: {status}"
        );
    }
}

criterion_group!(benches, pool);
criterion_main!(benches);
