//! Part 7: what N zombies cost. With 0, 10, 1000, 10000 zombies held: the kernel
//! memory they keep (slab caches, /proc/meminfo), the time of one fork elsewhere, and
//! the time of a full /proc scan (what ps does). Chapter: book/src/14-pid1.md

use crate::figures::{self, caches, fork_time, headroom, slab_bytes, Row};
use crate::maker::{self, MADE, MAKE, REAP, REAPED};
use crate::ns;
use crate::privileges::Ctx;
use crate::Args;
use proclab::measure::{fmt_duration, Stopwatch};
use proclab::{check, observe, procfacts, say, Lab};
use std::time::Duration;

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

/// A fork of the maker failed before `n` zombies were held: a limit on this user
/// or this cgroup, or pid_max. Said, and the steps stop there.
fn limited(lab: &mut Lab, n: usize, short: i64, errno: i64) {
    let err = nix::errno::Errno::from_raw(errno as i32);
    let why = format!(
        "{short} short of {n} zombies a fork failed with {err:?} ({}): a limit \
         (RLIMIT_NPROC, a pids cgroup above the lab, pid_max) holds this user \
         below {n}; the larger steps are skipped",
        err.desc()
    );
    observe!(lab, "skipped", "{why}", n, errno, why);
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
        let Some([MADE, made, errno, ns]) = maker.next(60_000) else {
            lab.not_observed(
                "zombies_held",
                format_args!("no answer to MAKE {more}"),
            );
        };
        if made < more as i64 {
            limited(lab, n, more as i64 - made, errno); // a limit came first
            break;
        }
        // Wait for the last ones to exit; then memory, a fork, a /proc scan.
        settle(n, pid);
        let row = measure(n, pid);
        // ANCHOR_END: hold
        let took = fmt_duration(Duration::from_nanos(ns as u64));
        say!("{more} more made in {took}");
        figures::show(lab, &row, &rows[0]);
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
    figures::show(lab, &after, &rows[0]);
    let held = rows.iter().all(|r| r.seen == r.n) && after.seen == 0;
    check!(
        lab,
        "zombies_held",
        held && rows.len() > 1,
        "at each step /proc showed exactly the zombies made, and none once reaped"
    );
    figures::table(lab, &rows, &after);
    maker.end();
    rows
}
