//! Part 7: what N zombies cost. With 0, 10, 1000, 10000 zombies held: the kernel
//! memory they keep (slab caches, /proc/meminfo), the time of one fork elsewhere, and
//! the time of a full /proc scan (what ps does). Chapter: book/src/14-pid1.md

use crate::maker::{self, MADE, MAKE, REAP, REAPED};
use crate::ns;
use crate::privileges::Ctx;
use crate::Args;
use nix::unistd::{fork, ForkResult};
use proclab::measure::{fmt_duration, Stopwatch, Summary};
use proclab::{check, cleanup, flush_stdout, observe, procfacts, say, Lab, OrDie};
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
fn caches() -> Option<Vec<(String, u64, u64)>> {
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
fn slab_bytes() -> Option<u64> {
    Some(caches()?.iter().map(|(_, used, size)| used * size).sum())
}

// ANCHOR: scan
/// Read /proc/PID/stat of every process, as ps does: how long it took, how many
/// processes there were, and how many were zombies whose parent is `maker`.
fn scan(maker: i32) -> (Duration, usize, usize) {
    let sw = Stopwatch::start();
    let (mut entries, mut zombies) = (0, 0);
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue; // not a process: /proc/meminfo, /proc/self...
        };
        let path = format!("/proc/{pid}/stat");
        let Ok(stat) = std::fs::read_to_string(path) else { continue };
        entries += 1;
        // After the command's closing parenthesis: the state, then the ppid.
        let mut after =
            stat.rsplit(')').next().into_iter().flat_map(str::split_whitespace);
        let state = after.next();
        let ppid = after.next().and_then(|p| p.parse().ok());
        zombies += (state == Some("Z") && ppid == Some(maker)) as usize;
    }
    (sw.elapsed(), entries, zombies)
}
// ANCHOR_END: scan

/// The fastest of `rounds` forks by the lab (the parent's side: fork() until it
/// returns), each child leaving at once and reaped. The fastest, not the median: on
/// a busy machine the other figures mostly measure the neighbours.
fn fork_time(rounds: usize) -> Duration {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        flush_stdout();
        let sw = Stopwatch::start();
        // SAFETY: the child only calls _exit.
        let child = match unsafe { fork() }.or_die("fork") {
            ForkResult::Child => unsafe { libc::_exit(0) },
            ForkResult::Parent { child } => child,
        };
        samples.push(sw.elapsed());
        cleanup::track(child);
        let _ = nix::sys::wait::waitpid(child, None);
        cleanup::forget(child);
    }
    Summary::of(&samples).min
}

/// Wait (up to 5 s) until the maker's `n` children have all exited: a fork
/// returns before its child has run, let alone exited.
fn settle(n: usize, maker: i32) {
    procfacts::poll_until(Duration::from_secs(5), || {
        (scan(maker).2 >= n).then_some(())
    });
}

fn measure(n: usize, maker: i32) -> Row {
    let meminfo = |f| procfacts::meminfo_field(f).unwrap_or(0);
    let (unreclaimable_kib, stack_kib) =
        (meminfo("SUnreclaim:"), meminfo("KernelStack:"));
    let slab = slab_bytes();
    let fork = fork_time(50);
    let scans = (0..3).map(|_| scan(maker)); // the fastest of three
    let (scan, entries, seen) = scans.min().unwrap_or_default();
    Row { n, seen, entries, scan, fork, slab, unreclaimable_kib, stack_kib }
}

/// How many zombies this machine can hold for the lab: half of the pids not in use.
fn headroom() -> usize {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let pid_max: usize =
        read("/proc/sys/kernel/pid_max").trim().parse().unwrap_or(0);
    let loadavg = read("/proc/loadavg");
    let tasks = loadavg.split_whitespace().nth(3).and_then(|f| f.split('/').nth(1));
    let tasks: usize = tasks.and_then(|t| t.parse().ok()).unwrap_or(pid_max);
    pid_max.saturating_sub(tasks) / 2
}

pub fn run(lab: &mut Lab, ctx: &Ctx, args: &Args) -> Vec<Row> {
    let mut steps: Vec<usize> = args.zombies.iter().map(|&n| n as usize).collect();
    steps.sort();
    steps.dedup();
    lab.section(&format!("7. What zombies cost: {steps:?} of them held"));
    let reaps = proclab::test_removes("maker_reaps");
    let maker = ns::spawn(ctx, ctx.newpid, |ends| maker::maker(ends, reaps));
    let pid = maker.pid.as_raw();
    if let Some(found) = caches() {
        let sizes: Vec<String> =
            found.iter().map(|(n, _, b)| format!("{n} {b} B")).collect();
        let sizes = sizes.join(", ");
        observe!(
            lab,
            "slab_caches",
            "what a zombie keeps, by /proc/slabinfo: one object in each of {sizes}",
            sizes
        );
    } else {
        say!("/proc/slabinfo is root's only: the slab column stays empty");
    }
    let mut rows = vec![measure(0, pid)];
    let free = headroom();
    for &n in &steps {
        if n > free {
            let why =
                format!("{n} zombies skipped: half of the free pids is {free}");
            observe!(lab, "skipped", "{why}", n, free, why);
            continue;
        }
        // ANCHOR: hold
        let more = n - rows[rows.len() - 1].n; // more than held so far
        maker.tell(MAKE, more as i64); // the maker forks them (see below)
        let Some([MADE, _, _, ns]) = maker.next(60_000) else {
            lab.not_observed(
                "zombies_held",
                format_args!("no answer to MAKE {more}"),
            );
        };
        // Wait for the last ones to exit; then memory, a fork, a /proc scan.
        settle(n, pid);
        let row = measure(n, pid);
        // ANCHOR_END: hold
        let took = fmt_duration(Duration::from_nanos(ns as u64));
        say!("{more} more made in {took}");
        show(lab, &row, &rows[0]);
        rows.push(row);
    }
    maker.tell(REAP, 0);
    let reaped = maker.next(60_000);
    let after = measure(0, pid);
    if let Some([REAPED, count, _, ns]) = reaped {
        let took = fmt_duration(Duration::from_nanos(ns as u64));
        observe!(
            lab,
            "reaped",
            "the maker reaped {count} zombies in {took}",
            count,
            took_ns = ns
        );
    }
    show(lab, &after, &rows[0]);
    let held = rows.iter().all(|r| r.seen == r.n) && after.seen == 0;
    check!(
        lab,
        "zombies_held",
        held && rows.len() > 1,
        "at each step /proc showed exactly the zombies made, and none once reaped"
    );
    table(lab, &rows, &after);
    maker.end();
    rows
}

/// Per zombie, from the baseline: bytes (or None when there is no zombie).
fn per(now: u64, base: u64, n: usize) -> Option<i64> {
    (n > 0).then(|| (now as i64 - base as i64) / n as i64)
}

fn show(lab: &mut Lab, r: &Row, base: &Row) {
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

fn table(lab: &mut Lab, rows: &[Row], after: &Row) {
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
