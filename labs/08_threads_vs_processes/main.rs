//! # threads-vs-processes: the same work done the thread way and the process way, measured
//!
//! A quick version of the criterion suite (`cargo bench`, see the results chapter): start a
//! worker and wait for it, keep idle workers around (their memory, from /proc smaps_rollup),
//! send one byte there and back, hand over 64 MiB, and split a CPU-bound job between
//! workers. It prints one table (thread figure, process figure, ratio), the limits on how
//! many of each this machine allows, and then each claim of the chapter with whether it
//! held on this run.
//!
//! What to look for: a fork costs several times a thread spawn; an idle process costs more
//! memory than an idle thread, but far less than its RSS suggests (PSS shares the pages
//! fork did not copy); handing 64 MiB to a thread moves a pointer, to a process it copies
//! every byte; on a small job the processes lose to a plain loop.
//!
//! Caveats: the timings are a few hundred samples on whatever else the machine is doing;
//! the claims the verdict rests on are the ones robust to that (orders of magnitude), the
//! others are reported as "held here" or "not here" without failing the lab. The workers
//! are not pinned (the benches have pinned variants: a wake-up on another CPU can cost ten
//! times one on the same CPU).

use clap::Parser;
use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};
use nix::sys::resource::{getrlimit, Resource};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, getpid, pipe, read, write, ForkResult, Pid};
use proclab::measure::{fmt_duration, Stopwatch, Summary};
use proclab::procfacts::{self, smaps_rollup_field};
mod tvp;
use proclab::lifeline::die_with_parent;
use proclab::wait::waitpid_by;
use proclab::{
    cleanup, flush_stdout, say, Common, Deadline, Lab, OrDie, Status, Watchdog,
};
use serde_json::json;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;
use tvp::{job, part};

/// Threads versus processes: start-up, memory, messages, bulk data and compute, measured.
#[derive(Parser)]
#[command(name = "threads-vs-processes", version)]
struct Args {
    /// How many workers to start and join each way, one after the other, for the
    /// start-up figures (10 to 5000).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(10..=5000))]
    spawns: u32,
    /// How many idle workers to keep at once for the memory figures (1 to 500).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=500))]
    idle: u32,
    /// How many one-byte round trips to time (10 to 200000).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(10..=200_000))]
    rounds: u32,
    /// The largest compute job, as a power of two of elements (12 to 30; the sweep goes
    /// from 2^10 up).
    #[arg(long, default_value_t = 22, value_parser = clap::value_parser!(u32).range(12..=30))]
    max_job: u32,
    #[command(flatten)]
    common: Common,
}

const BULK: usize = 64 << 20;
const CHUNK: usize = 64 << 10;

fn main() {
    let args = Args::parse();
    let mut lab = Lab::start(
        "threads-vs-processes",
        "a thread starts faster and costs less memory than a process, bulk data moves between threads without a copy, and the other claims are reported as measured on this run",
        &args.common,
    );
    let workers = proclab::cpu::cpus().max(2) as u64;
    let me = getpid().as_raw();
    let mut rows: Vec<Vec<String>> = Vec::new();

    // Tests only: every "thread" worker is a forked process (sections 1, 2 and 4).
    let threads_are_processes = proclab::test_removes("threads_are_processes");

    lab.section("1. Start a worker that does nothing, and wait for it");
    // Thread and fork samples alternate, so that a burst of load hits both ways alike.
    let (mut thread_samples, mut fork_samples) = (Vec::new(), Vec::new());
    for _ in 0..args.spawns {
        let sw = Stopwatch::start();
        if threads_are_processes {
            fork_and_reap();
        } else {
            spawn_and_join();
        }
        thread_samples.push(sw.elapsed());
        let sw = Stopwatch::start();
        fork_and_reap();
        fork_samples.push(sw.elapsed());
    }
    let (threads, forks) =
        (Summary::of(&thread_samples), Summary::of(&fork_samples));
    lab.observe(
        "spawn",
        json!({"way": "thread", "n": threads.n, "median_ns": threads.median.as_nanos() as u64, "p99_ns": threads.p99.as_nanos() as u64}),
        format_args!("thread::spawn + join:       {threads}"),
    );
    lab.observe(
        "spawn",
        json!({"way": "process", "n": forks.n, "median_ns": forks.median.as_nanos() as u64, "p99_ns": forks.p99.as_nanos() as u64}),
        format_args!("fork + _exit + waitpid:     {forks}"),
    );
    rows.push(row(
        "start + join one worker (median)",
        threads.median,
        forks.median,
    ));

    lab.section("2. Idle workers: what each one costs in memory");
    say!(
        "{} threads, then {} processes, each asleep in read(2) on the same pipe",
        args.idle,
        args.idle
    );
    let (thread_cost, threads_asleep) = if threads_are_processes {
        idle_processes(args.idle, me)
    } else {
        idle_threads(args.idle, me)
    };
    lab.observe(
        "memory",
        json!({"way": "thread", "workers": args.idle, "all_asleep": threads_asleep == args.idle as usize,
               "rss_kib": thread_cost.rss, "pss_kib": thread_cost.pss, "pte_kib": thread_cost.pte}),
        format_args!(
            "{} idle threads: the process grew by RSS {} KiB, PSS {} KiB, page tables {} KiB",
            args.idle, thread_cost.rss, thread_cost.pss, thread_cost.pte
        ),
    );
    let (proc_cost, asleep) = idle_processes(args.idle, me);
    lab.observe(
        "memory",
        json!({"way": "process", "workers": args.idle, "asleep": asleep,
               "rss_kib": proc_cost.rss, "pss_kib": proc_cost.pss, "pte_kib": proc_cost.pte}),
        format_args!(
            "{} idle processes ({asleep} seen asleep): RSS summed over them grew by {} KiB, PSS by {} KiB, page tables by {} KiB",
            args.idle, proc_cost.rss, proc_cost.pss, proc_cost.pte
        ),
    );
    let per = |kib: i64| kib as f64 / args.idle as f64;
    let thread_mem = per(thread_cost.pss + thread_cost.pte);
    let proc_mem = per(proc_cost.pss + proc_cost.pte);
    rows.push(vec![
        "memory per idle worker (PSS + page tables)".into(),
        format!("{thread_mem:.0} KiB"),
        format!("{proc_mem:.0} KiB"),
        ratio(proc_mem, thread_mem),
    ]);
    rows.push(vec![
        "  the same, by RSS summed as `ps` would".into(),
        format!("{:.0} KiB", per(thread_cost.rss)),
        format!("{:.0} KiB", per(proc_cost.rss)),
        ratio(per(proc_cost.rss), per(thread_cost.rss)),
    ]);

    lab.section("3. One byte there and back");
    let chan = channel_rtt(args.rounds);
    let pipes = pipe_rtt(args.rounds);
    lab.observe(
        "roundtrip",
        json!({"way": "thread", "rounds": args.rounds, "ns": chan.as_nanos() as u64}),
        format_args!(
            "crossbeam channel between two threads: {} per round trip",
            fmt_duration(chan)
        ),
    );
    lab.observe(
        "roundtrip",
        json!({"way": "process", "rounds": args.rounds, "ns": pipes.as_nanos() as u64}),
        format_args!(
            "pipe pair between two processes:       {} per round trip",
            fmt_duration(pipes)
        ),
    );
    rows.push(row("one-byte round trip (mean)", chan, pipes));

    lab.section("4. Hand 64 MiB to the other worker");
    let handover_copies = proclab::test_removes("handover_copies"); // tests only
    let (moved, same_address) = if threads_are_processes {
        (pipe_transfer(), false)
    } else {
        vec_handover(handover_copies)
    };
    let copied = pipe_transfer();
    lab.observe(
        "bulk",
        json!({"way": "thread", "bytes": BULK, "ns": moved.as_nanos() as u64, "same_address": same_address}),
        format_args!(
            "a 64 MiB Vec sent to a thread over a channel: {}; the thread got it at the address it was sent from: {same_address}",
            fmt_duration(moved)
        ),
    );
    lab.observe(
        "bulk",
        json!({"way": "process", "bytes": BULK, "ns": copied.as_nanos() as u64}),
        format_args!(
            "64 MiB written into a pipe by a child and read by the parent: {} ({})",
            fmt_duration(copied),
            proclab::measure::fmt_rate(BULK as u64, copied)
        ),
    );
    rows.push(row("hand over 64 MiB (fastest of 5)", moved, copied));

    lab.section("5. A CPU-bound job split between workers");
    say!("the same job (tvp::job) done by one loop, {workers} threads and {workers} forked processes, from 2^10 to 2^{} elements", args.max_job);
    let slots = Slots::new(workers as usize);
    let mut sweep = Vec::new();
    let mut parts_add_up = true;
    for exp in (10..=args.max_job).step_by(2) {
        let size = 1u64 << exp;
        let reps = if exp <= 20 { 9 } else { 3 };
        let seq = median_of(reps, || {
            std::hint::black_box(job(0, std::hint::black_box(size)));
        });
        let thr = median_of(reps, || {
            std::hint::black_box(tvp::split_threads(size, workers));
        });
        let prc = median_of(reps, || {
            std::hint::black_box(split_processes(size, workers, &slots));
        });
        let whole = job(0, size);
        parts_add_up &= tvp::split_threads(size, workers) == whole
            && split_processes(size, workers, &slots) == whole;
        sweep.push((exp, seq, thr, prc));
    }
    let sweep_rows: Vec<Vec<String>> = sweep
        .iter()
        .map(|&(exp, seq, thr, prc)| {
            vec![
                format!("2^{exp}"),
                fmt_duration(seq),
                fmt_duration(thr),
                fmt_duration(prc),
                format!("{:.2}x", speedup(seq, thr)),
                format!("{:.2}x", speedup(seq, prc)),
            ]
        })
        .collect();
    lab.table(
        "compute_sweep",
        &[
            "job size",
            "sequential",
            &format!("{workers} threads"),
            &format!("{workers} processes"),
            "threads speed-up",
            "processes speed-up",
        ],
        &sweep_rows,
    );
    // The smallest size from which the processes beat the plain loop at every larger size.
    let pays_from = sweep
        .iter()
        .rev()
        .take_while(|&&(_, seq, _, prc)| speedup(seq, prc) > 1.0)
        .last()
        .map(|&(exp, ..)| exp);
    let &(big, seq, thr, prc) = sweep.last().expect("at least one size");
    lab.observe(
        "compute",
        json!({"size_exp": big, "workers": workers, "sequential_ns": seq.as_nanos() as u64,
               "threads_ns": thr.as_nanos() as u64, "processes_ns": prc.as_nanos() as u64,
               "processes_pay_from_exp": pays_from}),
        format_args!(
            "2^{big} elements: sequential {}, {workers} threads {} ({:.2}x), {workers} processes {} ({:.2}x); processes beat the loop from {}",
            fmt_duration(seq),
            fmt_duration(thr),
            speedup(seq, thr),
            fmt_duration(prc),
            speedup(seq, prc),
            pays_from.map(|e| format!("2^{e} elements up")).unwrap_or_else(|| "no size on this run".into())
        ),
    );
    rows.push(row(
        &format!("compute 2^{big} on {workers} workers (median)"),
        thr,
        prc,
    ));

    lab.section("6. How many of each this machine allows");
    // ANCHOR: limits
    let (nproc_soft, nproc_hard) =
        getrlimit(Resource::RLIMIT_NPROC).or_die("getrlimit"); // tasks per user: threads count too
    let threads_max = read_number("/proc/sys/kernel/threads-max"); // tasks system-wide
    let pid_max = read_number("/proc/sys/kernel/pid_max"); // the largest pid (and tid) + 1
    let tasks_now = std::fs::read_to_string("/proc/loadavg") // "0.20 0.18 0.12 1/123 4567": 123 tasks
        .ok()
        .and_then(|s| {
            s.split_whitespace().nth(3)?.split('/').nth(1)?.parse::<u64>().ok()
        });
    // ANCHOR_END: limits
    let show = |v: u64| {
        if v == libc::RLIM_INFINITY {
            "unlimited".to_string()
        } else {
            v.to_string()
        }
    };
    lab.observe(
        "limits",
        json!({"rlimit_nproc_soft": nproc_soft, "rlimit_nproc_hard": nproc_hard, "threads_max": threads_max,
               "pid_max": pid_max, "tasks_now": tasks_now}),
        format_args!(
            "RLIMIT_NPROC {} (hard {}), threads-max {}, pid_max {}, tasks alive now {}",
            show(nproc_soft),
            show(nproc_hard),
            threads_max.map(show).unwrap_or("?".into()),
            pid_max.map(show).unwrap_or("?".into()),
            tasks_now.map(show).unwrap_or("?".into())
        ),
    );

    lab.section("7. The table, and the claims checked against it");
    lab.table(
        "comparison",
        &["work", "thread way", "process way", "process / thread"],
        &rows,
    );

    // Judged on the fastest run of each (other programs can only add time), with a margin.
    let fork_slower = forks.min > threads.min * 2;
    let mem_more = proc_mem > 2.0 * thread_mem;
    let rss_overstates = proc_cost.rss > 2 * proc_cost.pss.max(1);
    let move_cheaper = copied > moved * 10;
    let rtt_cheaper = chan < pipes;
    let (s_thr, s_prc) = (speedup(seq, thr), speedup(seq, prc));
    let scales = s_thr >= 1.5 && s_prc >= 1.5;
    let small_loses = sweep.first().is_some_and(|&(_, seq, _, prc)| prc > seq);
    let yes = |b: bool| if b { "held here" } else { "NOT here" }.to_string();
    let claims = vec![
        vec![
            "a thread starts at least twice as fast as a process".into(),
            format!(
                "fastest {} vs {}",
                fmt_duration(threads.min),
                fmt_duration(forks.min)
            ),
            yes(fork_slower),
            "check".into(),
        ],
        vec![
            "an idle process costs over twice the memory of an idle thread".into(),
            format!("{thread_mem:.0} vs {proc_mem:.0} KiB"),
            yes(mem_more),
            "check".into(),
        ],
        vec![
            "summing RSS over processes counts shared pages N times".into(),
            format!("RSS {} vs PSS {} KiB", proc_cost.rss, proc_cost.pss),
            yes(rss_overstates),
            "check".into(),
        ],
        vec![
            "bulk data goes to a thread by pointer, not by copy".into(),
            format!("same address: {same_address}"),
            yes(same_address),
            "check".into(),
        ],
        vec![
            "handing 64 MiB to a thread costs < 1/10 of a pipe copy".into(),
            format!("{} vs {}", fmt_duration(moved), fmt_duration(copied)),
            yes(move_cheaper),
            "reported".into(),
        ],
        vec![
            "a message round trip is cheaper between threads".into(),
            format!("{} vs {}", fmt_duration(chan), fmt_duration(pipes)),
            yes(rtt_cheaper),
            "reported".into(),
        ],
        vec![
            format!("both ways speed a large job up >= 1.5x on {workers} CPUs"),
            format!("{s_thr:.2}x, {s_prc:.2}x at 2^{big}"),
            yes(scales),
            "reported".into(),
        ],
        vec![
            "processes lose on a small job".into(),
            format!(
                "2^{}: {} vs {}",
                sweep[0].0,
                fmt_duration(sweep[0].3),
                fmt_duration(sweep[0].1)
            ),
            yes(small_loses),
            "reported".into(),
        ],
    ];
    lab.table("claims", &["claim", "measured here", "held?", "kind"], &claims);

    let n = args.idle as usize;
    lab.check(
        "idle_workers_asleep",
        threads_asleep == n && asleep == n,
        format_args!("every idle worker was seen asleep in read(2) before its memory was read ({threads_asleep} of {n} threads, {asleep} of {n} processes)"),
    );
    lab.check(
        "thread_starts_faster",
        fork_slower,
        format_args!(
            "a thread started and joined at least twice as fast as a process forked and reaped (fastest of {} each: {} vs {}, {:.1}x)",
            forks.n,
            fmt_duration(threads.min),
            fmt_duration(forks.min),
            forks.min.as_secs_f64() / threads.min.as_secs_f64().max(1e-12)
        ),
    );
    lab.check(
        "process_costs_more_memory",
        mem_more,
        format_args!("an idle process costs over twice an idle thread in PSS + page tables ({proc_mem:.0} vs {thread_mem:.0} KiB)"),
    );
    lab.check(
        "rss_overstates_processes",
        rss_overstates,
        format_args!(
            "RSS summed over the processes ({} KiB) is more than twice their PSS ({} KiB): fork shares pages",
            proc_cost.rss, proc_cost.pss
        ),
    );
    lab.check(
        "handover_is_a_move",
        same_address,
        "the thread received the 64 MiB at the address they were sent from: a pointer moved, no byte was copied",
    );
    lab.check(
        "compute_parts_add_up",
        parts_add_up,
        "at every size the threads' parts and the processes' parts (written into a MAP_SHARED page) added up to the plain loop's result",
    );
    lab.finish()
}

/// A table row: the thread figure, the process figure and how many times the process costs.
fn row(work: &str, thread: Duration, process: Duration) -> Vec<String> {
    vec![
        work.to_string(),
        fmt_duration(thread),
        fmt_duration(process),
        ratio(process.as_secs_f64(), thread.as_secs_f64()),
    ]
}

fn ratio(process: f64, thread: f64) -> String {
    if thread <= 0.0 {
        "-".into()
    } else {
        format!("{:.2}x", process / thread)
    }
}

fn speedup(seq: Duration, par: Duration) -> f64 {
    seq.as_secs_f64() / par.as_secs_f64().max(1e-12)
}

fn median_of(n: usize, f: impl FnMut()) -> Duration {
    proclab::measure::time_n(n, f).median
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A thread's panic is a bug in the lab; say which call failed like the other errors.
trait JoinOrDie<T> {
    fn or_die_thread(self) -> T;
}

impl<T> JoinOrDie<T> for std::thread::Result<T> {
    fn or_die_thread(self) -> T {
        self.unwrap_or_else(|_| {
            proclab::die(
                "thread::join (the thread panicked)",
                nix::errno::Errno::EIO,
            )
        })
    }
}

/// Memory of a set of processes, summed, in KiB: RSS, PSS (smaps_rollup) and page tables
/// (VmPTE in /proc/PID/status).
#[derive(Clone, Copy, Debug)]
struct Mem {
    rss: i64,
    pss: i64,
    pte: i64,
}

impl Mem {
    fn minus(&self, o: &Mem) -> Mem {
        Mem { rss: self.rss - o.rss, pss: self.pss - o.pss, pte: self.pte - o.pte }
    }
}

fn memory_of(pids: &[i32]) -> Mem {
    let mut m = Mem { rss: 0, pss: 0, pte: 0 };
    for &pid in pids {
        m.rss += smaps_rollup_field(pid, "Rss:").unwrap_or(0) as i64;
        m.pss += smaps_rollup_field(pid, "Pss:").unwrap_or(0) as i64;
        m.pte += procfacts::status_field(pid, "VmPTE:").unwrap_or(0) as i64;
    }
    m
}

/// True when this process has `n` threads and all but the main one sleep (state S).
fn tasks_sleeping(pid: i32, n: usize) -> bool {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let tids: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .filter(|&t| t != pid)
        .collect();
    tids.len() + 1 == n
        && tids.iter().all(|t| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{t}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit(')').next().map(|r| r.trim_start().starts_with('S'))
                })
                .unwrap_or(false)
        })
}

/// Mean round trip of one byte between this thread and an echo thread, over two crossbeam
/// channels.
fn channel_rtt(rounds: u32) -> Duration {
    let (to_tx, to_rx) = crossbeam::channel::bounded::<u8>(1);
    let (back_tx, back_rx) = crossbeam::channel::bounded::<u8>(1);
    let echo = std::thread::spawn(move || {
        while let Ok(b) = to_rx.recv() {
            let _ = back_tx.send(b);
        }
    });
    let sw = Stopwatch::start();
    for _ in 0..rounds {
        let _ = to_tx.send(1);
        let _ = back_rx.recv();
    }
    let took = sw.elapsed();
    drop(to_tx);
    echo.join().or_die_thread();
    took / rounds
}

/// Mean round trip of one byte between this process and an echo child, over two pipes.
fn pipe_rtt(rounds: u32) -> Duration {
    // ANCHOR: pipe_rtt
    let (there_r, there_w) = pipe().or_die("pipe"); // parent -> child
    let (back_r, back_w) = pipe().or_die("pipe"); // child -> parent
    let me = getpid().as_raw();
    flush_stdout();
    // SAFETY: the child only calls prctl, getppid, close, read, write and _exit.
    let child = match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            die_with_parent(me);
            drop(there_w); // or the child would never see EOF
            let mut b = [0u8; 1];
            while read(there_r.as_fd(), &mut b) == Ok(1) {
                let _ = write(&back_w, &b); // echo it back
            }
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => child,
    };
    cleanup::track(child);
    drop((there_r, back_w));
    let mut b = [1u8; 1];
    let mut echoed = 0;
    let sw = Stopwatch::start();
    for _ in 0..rounds {
        write(&there_w, &b).or_die("write");
        echoed += read(back_r.as_fd(), &mut b).or_die("read"); // 0: it died
    }
    let took = sw.elapsed();
    // ANCHOR_END: pipe_rtt
    drop(there_w); // EOF: the child leaves its loop
    let st = reap(child);
    if echoed != rounds as usize {
        let why =
            format!("round trips: {echoed} of {rounds} echoed, the echo {st}");
        proclab::die(&why, nix::errno::Errno::EIO);
    }
    took / rounds
}

/// Fastest of 5: a 64 MiB Vec sent to another thread, which reads its last byte and says
/// at which address it found the bytes; true if that was always where they were sent from.
/// `copies` (tests only) sends a copy instead.
fn vec_handover(copies: bool) -> (Duration, bool) {
    let (tx, rx) = crossbeam::channel::bounded::<Vec<u8>>(1);
    let (back_tx, back_rx) = crossbeam::channel::bounded::<(Vec<u8>, usize)>(1);
    let t = std::thread::spawn(move || {
        while let Ok(v) = rx.recv() {
            std::hint::black_box(v[BULK - 1]); // the receiver owns all 64 MiB now
            let at = v.as_ptr() as usize; // where the bytes are
            let _ = back_tx.send((v, at)); // handed back, so freeing it is not timed
        }
    });
    let mut v = vec![5u8; BULK]; // made (and touched) before the clock starts
    let mut times = Vec::new();
    let mut same = true;
    for _ in 0..5 {
        let sent_from = v.as_ptr() as usize;
        let sw = Stopwatch::start();
        let _ = tx.send(if copies { v.clone() } else { v }); // 24 bytes: ptr, len, cap
        let (back, at) = back_rx.recv().unwrap_or_default();
        times.push(sw.elapsed() / 2); // two hand-overs: there and back
        same &= at == sent_from;
        v = back;
    }
    drop(tx);
    t.join().or_die_thread();
    (Summary::of(&times).min, same) // other programs can only add time
}

/// Fastest of 5: a child writes 64 MiB into a pipe in 64 KiB writes; the parent reads it all.
fn pipe_transfer() -> Duration {
    let src = vec![5u8; CHUNK]; // the child's data, made before fork
    let mut buf = vec![0u8; CHUNK];
    let mut times = Vec::new();
    for _ in 0..5 {
        let (r, w) = pipe().or_die("pipe");
        flush_stdout();
        let me = getpid().as_raw();
        // SAFETY: the child only calls prctl, getppid, close, write and _exit.
        let child = match unsafe { fork() }.or_die("fork") {
            ForkResult::Child => {
                die_with_parent(me);
                drop(r);
                for _ in 0..BULK / CHUNK {
                    let mut off = 0;
                    while off < CHUNK {
                        match write(&w, &src[off..]) {
                            Ok(n) => off += n,
                            Err(_) => unsafe { libc::_exit(1) },
                        }
                    }
                }
                unsafe { libc::_exit(0) }
            }
            ForkResult::Parent { child } => child,
        };
        cleanup::track(child);
        drop(w);
        // A writer that stops (SIGSTOP) would block the reads: kill it at 30 s.
        let dog = Watchdog::arm(Duration::from_secs(30), move || {
            let _ = kill(child, Signal::SIGKILL);
        });
        let sw = Stopwatch::start();
        let mut got = 0;
        loop {
            match read(r.as_fd(), &mut buf).or_die("read") {
                0 => break, // EOF: the child is done (or dead)
                n => got += n,
            }
        }
        times.push(sw.elapsed());
        dog.disarm();
        let st = reap(child);
        if got != BULK || st.code() != Some(0) {
            let why = format!("pipe transfer: {got} bytes read, the writer {st}");
            proclab::die(&why, nix::errno::Errno::EIO);
        }
    }
    Summary::of(&times).min // other programs can only add time
}

/// One u64 per worker in an anonymous MAP_SHARED mapping: children forked after it was made
/// write into the same physical page the parent reads.
struct Slots {
    ptr: std::ptr::NonNull<libc::c_void>,
    len: NonZeroUsize,
}

impl Slots {
    fn new(n: usize) -> Slots {
        let len = NonZeroUsize::new((n * 8).max(4096)).expect("non-zero");
        // SAFETY: a fresh anonymous mapping, touching no existing memory.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }
        .or_die("mmap"); // MAP_SHARED: not copied on write by fork
        Slots { ptr, len }
    }
    fn slot(&self, k: usize) -> *mut u64 {
        assert!((k + 1) * 8 <= self.len.get());
        // SAFETY: in bounds (checked above).
        unsafe { self.ptr.cast::<u64>().as_ptr().add(k) }
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        // SAFETY: our own mapping, no longer used.
        let _ = unsafe { munmap(self.ptr, self.len.get()) };
    }
}

/// The job split between `workers` forked children; each writes its part into its slot of
/// the shared mapping, the parent adds the parts after reaping them all.
fn split_processes(size: u64, workers: u64, slots: &Slots) -> u64 {
    let me = getpid().as_raw();
    let mut kids = Vec::with_capacity(workers as usize);
    // ANCHOR: processes
    for k in 0..workers {
        flush_stdout();
        // SAFETY: the child computes (no allocation, no lock), writes its slot and _exits.
        match unsafe { fork() }.or_die("fork") {
            ForkResult::Child => {
                die_with_parent(me);
                let (lo, hi) = part(size, workers, k);
                unsafe { slots.slot(k as usize).write_volatile(job(lo, hi)) }; // shared page
                unsafe { libc::_exit(0) }
            }
            ForkResult::Parent { child } => {
                cleanup::track(child);
                kids.push(child);
            }
        }
    }
    for child in kids {
        waitpid(child, None).or_die("waitpid"); // then its write is visible
        cleanup::forget(child);
    }
    (0..workers as usize)
        .map(|k| unsafe { slots.slot(k).read_volatile() }) // SAFETY: the writers have exited
        .fold(0, u64::wrapping_add)
    // ANCHOR_END: processes
}

/// `n` idle threads, each asleep in read(2) on one pipe: how much the process grew, and
/// how many of them were seen asleep.
fn idle_threads(n: u32, me: i32) -> (Mem, usize) {
    let before = memory_of(&[me]);
    // Every idle worker blocks reading this pipe until its write end is closed.
    let (wake_r, wake_w) = pipe().or_die("pipe");
    // ANCHOR: idle_threads
    let idle: Vec<_> = (0..n)
        .map(|_| {
            let fd = wake_r.as_raw_fd();
            std::thread::spawn(move || {
                let mut b = [0u8; 1];
                // SAFETY: read into a local buffer; returns 0 when the write end is closed.
                unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) } // sleeps until EOF
            })
        })
        .collect();
    let asleep = procfacts::poll_until(Duration::from_secs(10), || {
        tasks_sleeping(me, n as usize + 1).then_some(())
    });
    let with_threads = memory_of(&[me]);
    // ANCHOR_END: idle_threads
    drop(wake_w); // EOF: every thread's read returns 0
    for t in idle {
        t.join().or_die_thread();
    }
    let asleep = if asleep.is_some() { n as usize } else { 0 };
    (with_threads.minus(&before), asleep)
}

/// `n` idle forked children, each asleep in read(2) on one pipe: how much the parent and
/// the children grew, summed, and how many children were seen asleep.
fn idle_processes(n: u32, me: i32) -> (Mem, usize) {
    let base = memory_of(&[me]);
    let (wake_r, wake_w) = pipe().or_die("pipe");
    // ANCHOR: idle_processes
    let mut kids: Vec<Pid> = Vec::with_capacity(n as usize);
    for _ in 0..n {
        flush_stdout();
        // SAFETY: the child only calls prctl, getppid, close, read and _exit.
        match unsafe { fork() }.or_die("fork") {
            ForkResult::Child => {
                die_with_parent(me);
                // SAFETY: closes this process's copy of the write end, or EOF never comes.
                unsafe { libc::close(wake_w.as_raw_fd()) };
                let mut b = [0u8; 1];
                let _ = read(wake_r.as_fd(), &mut b); // asleep until wake_w is closed
                                                      // SAFETY: _exit is async-signal-safe.
                unsafe { libc::_exit(0) }
            }
            ForkResult::Parent { child } => {
                cleanup::track(child); // killed and reaped on every way out
                kids.push(child);
            }
        }
    }
    let asleep = kids
        .iter()
        .filter(|k| {
            procfacts::wait_for_state(k.as_raw(), &['S'], Duration::from_secs(10))
                .is_some()
        })
        .count();
    let mut group: Vec<i32> = kids.iter().map(|k| k.as_raw()).collect();
    group.push(me);
    // The parent and every child, summed.
    let with_procs = memory_of(&group);
    // ANCHOR_END: idle_processes
    drop(wake_w);
    drop(wake_r);
    for k in kids {
        reap(k);
    }
    (with_procs.minus(&base), asleep)
}

// ANCHOR: spawn
/// Start a thread that does nothing and join it: clone(CLONE_VM | CLONE_THREAD | ...).
fn spawn_and_join() {
    std::thread::spawn(|| ()).join().or_die_thread();
}

/// Fork a child that only exits, and reap it: the cost includes its exit and the wait.
fn fork_and_reap() {
    flush_stdout();
    // SAFETY: the child only calls _exit (it ends at once: no lifeline needed).
    match unsafe { fork() }.or_die("fork") {
        // SAFETY: _exit is async-signal-safe.
        ForkResult::Child => unsafe { libc::_exit(0) },
        ForkResult::Parent { child } => {
            waitpid(child, None).or_die("waitpid"); // it only exits: a short wait
        }
    }
}
// ANCHOR_END: spawn

/// Reap a child that is ending (bounded: 10 s of lab time), and stop owning it.
fn reap(child: Pid) -> Status {
    let st = waitpid_by(child, Deadline::after(Duration::from_secs(10)))
        .unwrap_or_else(|| {
            proclab::die(
                "waitpid (a worker did not end)",
                nix::errno::Errno::ETIMEDOUT,
            )
        });
    cleanup::forget(child);
    st
}
