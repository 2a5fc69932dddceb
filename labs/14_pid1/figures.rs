//! Plumbing of part 7: the figures besides the /proc scan (kernel memory from
//! /proc/slabinfo and /proc/meminfo, the time of a fork, how many zombies the
//! machine can spare pids for), each step's observation and the table of them.

use nix::unistd::{fork, ForkResult};
use proclab::_exit;
use proclab::measure::{fmt_duration, Stopwatch, Summary};
use proclab::{cleanup, flush_stdout, observe, Lab, OrDie};
use std::time::Duration;

/// The slab caches that hold what a zombie keeps: its task, its signal state and
/// handlers, its pid.
const CACHES: [&str; 4] = ["task_struct", "signal_cache", "sighand_cache", "pid"];

/// One set of measurements, with `n` zombies held.
pub struct Row {
    pub n: usize,
    /// Zombies of the maker that a /proc scan found.
    pub seen: usize,
    pub entries: usize,
    pub scan: Duration,
    pub fork: Duration,
    /// Bytes in CACHES (None without root: /proc/slabinfo is root's only).
    pub slab: Option<u64>,
    pub unreclaimable_kib: u64,
    pub stack_kib: u64,
}

/// The caches of CACHES in /proc/slabinfo (root's only): name, objects in use,
/// bytes per object.
pub fn caches() -> Option<Vec<(String, u64, u64)>> {
    let text = std::fs::read_to_string("/proc/slabinfo").ok()?;
    let row = |l: &str| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let n = |i: usize| f.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
        let name = f.first().filter(|name| CACHES.contains(name))?;
        Some((name.to_string(), n(1), n(3)))
    };
    Some(text.lines().filter_map(row).collect())
}

/// Bytes in use in the caches of CACHES.
pub fn slab_bytes() -> Option<u64> {
    Some(caches()?.iter().map(|(_, used, size)| used * size).sum())
}

/// The fastest of `rounds` forks by the lab (the parent's side: fork() until it
/// returns), each child leaving at once and reaped. The fastest, not the median: on
/// a busy machine the other figures mostly measure the neighbours.
pub fn fork_time(rounds: usize) -> Duration {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        flush_stdout();
        let sw = Stopwatch::start();
        // SAFETY: the child only calls _exit.
        let child = match unsafe { fork() }.or_die("fork") {
            ForkResult::Child => _exit(0),
            ForkResult::Parent { child } => child,
        };
        samples.push(sw.elapsed());
        cleanup::track(child);
        let _ = nix::sys::wait::waitpid(child, None);
        cleanup::forget(child);
    }
    Summary::of(&samples).min
}

/// How many zombies this machine can hold for the lab: half of the pids not in use.
pub fn headroom() -> usize {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let pid_max: usize =
        read("/proc/sys/kernel/pid_max").trim().parse().unwrap_or(0);
    let loadavg = read("/proc/loadavg");
    let tasks = loadavg.split_whitespace().nth(3).and_then(|f| f.split('/').nth(1));
    let tasks: usize = tasks.and_then(|t| t.parse().ok()).unwrap_or(pid_max);
    pid_max.saturating_sub(tasks) / 2
}

/// Per zombie, from the baseline: bytes (or None when there is no zombie).
fn per(now: u64, base: u64, n: usize) -> Option<i64> {
    (n > 0).then(|| (now as i64 - base as i64) / n as i64)
}

pub fn show(lab: &mut Lab, r: &Row, base: &Row) {
    let (n, seen, entries) = (r.n, r.seen, r.entries);
    let slab = r.slab.zip(base.slab).and_then(|(a, b)| per(a, b, n));
    let unreclaimable =
        per(r.unreclaimable_kib * 1024, base.unreclaimable_kib * 1024, n);
    let stack = per(r.stack_kib * 1024, base.stack_kib * 1024, n);
    let (fork_ns, scan_ns) = (r.fork.as_nanos() as u64, r.scan.as_nanos() as u64);
    observe!(
        lab,
        "zombie_cost",
        "{n} zombies ({seen} seen among {entries} processes in /proc): fork \
         {fork}, /proc scan {scan}",
        n,
        seen,
        entries,
        fork = fmt_duration(r.fork),
        scan = fmt_duration(r.scan),
        fork_ns,
        scan_ns,
        slab_bytes_per_zombie = slab,
        unreclaimable_bytes_per_zombie = unreclaimable,
        stack_bytes_per_zombie = stack
    );
}

pub fn table(lab: &mut Lab, rows: &[Row], after: &Row) {
    let base = &rows[0];
    let bytes = |v: Option<i64>| v.map_or("-".into(), |b| format!("{b} B"));
    let mut out = Vec::new();
    for (label, r) in rows
        .iter()
        .map(|r| (r.n.to_string(), r))
        .chain([("0 (reaped)".to_string(), after)])
    {
        let slab = r.slab.zip(base.slab).and_then(|(a, b)| per(a, b, r.n));
        let unrec =
            per(r.unreclaimable_kib * 1024, base.unreclaimable_kib * 1024, r.n);
        let stack = per(r.stack_kib * 1024, base.stack_kib * 1024, r.n);
        let per_entry = r.scan / r.entries.max(1) as u32;
        out.push(vec![
            label,
            r.seen.to_string(),
            bytes(slab),
            bytes(unrec),
            bytes(stack),
            fmt_duration(r.fork),
            fmt_duration(r.scan),
            fmt_duration(per_entry),
        ]);
    }
    let headers = [
        "zombies",
        "seen",
        "slab/zombie",
        "SUnreclaim/zombie",
        "KernelStack/zombie",
        "fork (min)",
        "/proc scan (min)",
        "per entry",
    ];
    lab.table("zombie_costs", &headers, &out);
}
