//! Threads versus processes, measured: the same work done the thread way and the process way.
//!
//! Groups (run one with `cargo bench -- spawn`; the book quotes these ids):
//!
//! - `spawn`: start a worker that does nothing and wait for it: `thread_spawn_join`
//!   (std), `pthread_create_join` (libc, like the C reference), `fork_exit_wait` (the
//!   child only `_exit`s), `vfork_true_wait` (clone with CLONE_VM | CLONE_VFORK, then
//!   execve), `fork_exec_true_wait`, `posix_spawn_true_wait`, `command_status`
//!   (`std::process::Command::status`), all of `/bin/true`.
//! - `roundtrip`: one byte there and back: `channel_rtt_*` (crossbeam, two threads),
//!   `pipe_rtt_*`, `socketpair_rtt_*` and `futex_rtt_*` (a flag in shared memory and
//!   futex wake-ups) between two processes; `_same_cpu` pins both sides on CPU 0,
//!   `_cross_cpu` puts them on CPUs 0 and 1.
//! - `bulk`: bytes moved through 64 MiB working sets (out of cache), 1 MiB per
//!   iteration: `memcpy_64MiB` (the physical limit), `pipe_bw_*`, `socketpair_bw_*`,
//!   `shm_bw_*` (a ring in a shared mapping) from a child to the parent; and
//!   `channel_vec_64MiB`, a 64 MiB `Vec` sent to another thread (a pointer move).
//! - `compute`: the same CPU-bound job (`tvp::job`) done `sequential`ly, with
//!   `rayon`, with `scoped_threads` and with forked `processes` that return their part
//!   through shared memory, for job sizes from 2^16 to 2^26 elements.
//!
//! Every figure that the C reference also does runs the code of `common/rounds.rs`,
//! the same as `cargo bench --bench versus_c` compares with C in alternating rounds.
//! The `spawn` figures are per-iteration medians (each iteration timed alone), so that
//! one preemption on a shared machine does not move them; the other groups are the sum
//! of the iterations' times, criterion's usual mean.
//!
//! Each group sets its own warm-up, measurement time and sample size so a full `cargo bench`
//! stays short; `--warm-up-time`, `--measurement-time` and `--sample-size` given on the
//! command line take precedence (criterion's own rule is the other way round).

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion,
    SamplingMode, Throughput,
};
mod common;
#[allow(unused_imports)] // its unit tests are compiled out here
#[path = "../labs/08_threads_vs_processes/tvp.rs"]
mod tvp;
use common::rounds::{self, Figure, BLOCK};
use common::{child_exit, fork_or_panic, wait_ok, Placement, SharedMap};
use std::hint::black_box;
use std::time::{Duration, Instant};
use tvp::{job, part};

/// Apply a group's timing unless the command line set it.
fn tune(
    g: &mut BenchmarkGroup<'_, WallTime>,
    warm_ms: u64,
    measure_ms: u64,
    samples: usize,
) {
    let given = |flag: &str| std::env::args().any(|a| a == flag);
    if !given("--warm-up-time") {
        g.warm_up_time(Duration::from_millis(warm_ms));
    }
    if !given("--measurement-time") {
        g.measurement_time(Duration::from_millis(measure_ms));
    }
    if !given("--sample-size") {
        g.sample_size(samples);
    }
    if !given("--nresamples") {
        g.nresamples(10_000); // the bootstrap's default 100 000 costs more CPU than these benches
    }
}

/// One round of figure `name` with `iters` timed iterations, their times in ns. Two
/// untimed iterations first: the first block of a stream or the first round trip would
/// also carry the start of the child forked for the round.
fn round_of(name: &str, iters: u64) -> Vec<u64> {
    let fig = Figure::parse(name).unwrap_or_else(|| panic!("no figure {name}"));
    let mut out = vec![0u64; iters as usize];
    rounds::round(&fig, 2, &mut out);
    out
}

/// `iters` x the median iteration: criterion then sees the per-iteration median instead
/// of a mean that a single 5 ms preemption on a shared machine drags up.
fn median_times_n(name: &str, iters: u64) -> Duration {
    let mut v = round_of(name, iters);
    v.sort_unstable();
    Duration::from_nanos(v[v.len() / 2] * iters)
}

/// The sum of the iterations' times: what a batch would take.
fn total(name: &str, iters: u64) -> Duration {
    Duration::from_nanos(round_of(name, iters).iter().sum())
}

// ---------------------------------------------------------------- spawn

fn spawn(c: &mut Criterion) {
    common::plain_environment();
    let mut g = c.benchmark_group("spawn");
    tune(&mut g, 300, 1200, 30);
    for name in [
        "thread_spawn_join",
        "pthread_create_join",
        "fork_exit_wait",
        "vfork_true_wait",
        "fork_exec_true_wait",
        "posix_spawn_true_wait",
    ] {
        g.bench_function(name, |b| b.iter_custom(|n| median_times_n(name, n)));
    }
    g.bench_function("command_status", |b| {
        b.iter_custom(|iters| {
            let mut v: Vec<Duration> = (0..iters)
                .map(|_| {
                    let t = Instant::now();
                    let st = std::process::Command::new("/bin/true")
                        .status()
                        .expect("spawn /bin/true");
                    assert!(st.success());
                    t.elapsed()
                })
                .collect();
            v.sort_unstable();
            v[v.len() / 2] * iters as u32
        })
    });
    g.finish();
}

// ---------------------------------------------------------------- roundtrip

fn channel_rtt(iters: u64, place: Placement) -> Duration {
    let (to_tx, to_rx) = crossbeam::channel::bounded::<u8>(1);
    let (back_tx, back_rx) = crossbeam::channel::bounded::<u8>(1);
    place.begin();
    let echo = std::thread::spawn(move || {
        place.child();
        while let Ok(c) = to_rx.recv() {
            if back_tx.send(c).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    for _ in 0..iters {
        to_tx.send(b'x').unwrap();
        black_box(back_rx.recv().unwrap());
    }
    let took = start.elapsed();
    drop(to_tx);
    echo.join().unwrap();
    place.end();
    took
}

fn roundtrip(c: &mut Criterion) {
    let mut g = c.benchmark_group("roundtrip");
    tune(&mut g, 200, 1000, 20);
    let cross = proclab::cpu::cpus() >= 2;
    for kind in ["channel_rtt", "pipe_rtt", "socketpair_rtt", "futex_rtt"] {
        let mut places = vec![("same_cpu", Placement::SameCpu)];
        if cross {
            places.push(("cross_cpu", Placement::CrossCpu));
        }
        if kind == "pipe_rtt" {
            places.push(("unpinned", Placement::Unpinned));
        }
        for (suffix, place) in places {
            let name = format!("{kind}_{suffix}");
            g.bench_function(&name, |b| {
                b.iter_custom(|n| match kind {
                    "channel_rtt" => channel_rtt(n, place),
                    _ => total(&name, n),
                })
            });
        }
    }
    g.finish();
}

// ---------------------------------------------------------------- bulk

fn bulk(c: &mut Criterion) {
    let mut g = c.benchmark_group("bulk");
    tune(&mut g, 300, 1500, 10);
    g.sampling_mode(SamplingMode::Flat); // iterations take a millisecond: no need to ramp up

    g.throughput(Throughput::Bytes(BLOCK as u64));
    let mut names = vec!["memcpy_64MiB", "pipe_bw_64MiB_same_cpu"];
    if proclab::cpu::cpus() >= 2 {
        names.extend([
            "pipe_bw_64MiB_cross_cpu",
            "socketpair_bw_64MiB_cross_cpu",
            "shm_bw_64MiB_cross_cpu",
        ]);
    }
    for name in names {
        g.bench_function(name, |b| b.iter_custom(|n| total(name, n)));
    }

    const VEC: usize = 64 << 20;
    g.throughput(Throughput::Bytes(VEC as u64));
    g.bench_function("channel_vec_64MiB", |b| {
        let (to_tx, to_rx) = crossbeam::channel::bounded::<Vec<u8>>(1);
        let (back_tx, back_rx) = crossbeam::channel::bounded::<Vec<u8>>(1);
        let echo = std::thread::spawn(move || {
            while let Ok(v) = to_rx.recv() {
                if back_tx.send(v).is_err() {
                    break;
                }
            }
        });
        let mut v = Some(vec![3u8; VEC]);
        // One iteration moves the 64 MiB Vec to the other thread and gets it back: two
        // moves of a (pointer, length, capacity) triple; no byte is copied.
        b.iter(|| {
            to_tx.send(v.take().unwrap()).unwrap();
            v = Some(back_rx.recv().unwrap());
        });
        drop(to_tx);
        echo.join().unwrap();
    });
    g.finish();
}

// ---------------------------------------------------------------- compute

/// The job sizes, in elements of `tvp::job`.
const SIZES: [u32; 4] = [16, 20, 24, 26];

fn processes(size: u64, workers: u64, slots: &SharedMap) -> u64 {
    let out = slots.u64s();
    let mut pids = Vec::with_capacity(workers as usize);
    for k in 0..workers {
        let pid = fork_or_panic();
        if pid == 0 {
            let (lo, hi) = part(size, workers, k);
            // SAFETY: slot k of the shared mapping is this child's alone.
            unsafe { out.add(k as usize).write_volatile(job(lo, hi)) };
            child_exit(true);
        }
        pids.push(pid);
    }
    for pid in pids {
        wait_ok(pid); // after waitpid the child's write to the shared page is visible
    }
    (0..workers as usize)
        // SAFETY: every child has exited; the slots are read-only now.
        .map(|k| unsafe { out.add(k).read_volatile() })
        .fold(0, u64::wrapping_add)
}

fn rayon_job(size: u64) -> u64 {
    use rayon::prelude::*;
    // 64 equal pieces (fewer for tiny jobs); rayon's work stealing spreads them on its pool.
    let pieces = (size / 4096).clamp(1, 64);
    (0..pieces)
        .into_par_iter()
        .map(|k| {
            let (lo, hi) = part(size, pieces, k);
            job(lo, hi)
        })
        .reduce(|| 0, u64::wrapping_add)
}

fn compute(c: &mut Criterion) {
    let mut g = c.benchmark_group("compute");
    tune(&mut g, 200, 1000, 10);
    g.sampling_mode(SamplingMode::Flat);
    let workers = proclab::cpu::cpus() as u64;
    let slots = SharedMap::new(4096);
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers as usize)
        .build_global()
        .ok(); // start rayon's pool once, outside the timings
    for exp in SIZES {
        let size = 1u64 << exp;
        let expected = job(0, size);
        g.throughput(Throughput::Elements(size));
        let label = format!("2^{exp}");
        g.bench_with_input(
            BenchmarkId::new("sequential", &label),
            &size,
            |b, &n| b.iter(|| assert_eq!(job(0, black_box(n)), expected)),
        );
        g.bench_with_input(BenchmarkId::new("rayon", &label), &size, |b, &n| {
            b.iter(|| assert_eq!(rayon_job(black_box(n)), expected))
        });
        g.bench_with_input(
            BenchmarkId::new("scoped_threads", &label),
            &size,
            |b, &n| {
                b.iter(|| {
                    assert_eq!(tvp::split_threads(black_box(n), workers), expected)
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("processes", &label),
            &size,
            |b, &n| {
                b.iter(|| {
                    assert_eq!(processes(black_box(n), workers, &slots), expected)
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, spawn, roundtrip, bulk, compute);
criterion_main!(benches);
