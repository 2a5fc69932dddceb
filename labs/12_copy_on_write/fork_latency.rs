//! Section 1: fork + _exit + waitpid timed while the parent has 1 MiB to 1 GiB of
//! touched memory, against vfork + exec and posix_spawn of /bin/true. Judged on the
//! fastest run of each way at each size: other programs can only add time.

use crate::region::Region;
use crate::spawn_ways::{spawn_true, vfork_true, TrueProgram};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, getpid, ForkResult};
use proclab::_exit;
use proclab::measure::{fmt_bytes, fmt_duration, time_n};
use proclab::{
    check, flush_stdout, observe, procfacts, Lab, Nanos, OrDie, Summary,
};
use std::time::Duration;

/// One size: its MiB, and the fork, vfork and posix_spawn timings.
type Point = (u64, Summary, Summary, Summary);

pub fn run(lab: &mut Lab, max_mib: u64, runs: u32, huge: bool) {
    let untouched = proclab::test_removes("region_untouched"); // tests only
    let me = getpid().as_raw();
    let prog = TrueProgram::new();
    let mut stack = vec![0u8; 64 << 10]; // the vfork child's (it may not use ours)
    let available_mib =
        procfacts::meminfo_field("MemAvailable:").unwrap_or(0) >> 10;
    let (mut rows, mut points) = (Vec::new(), Vec::<Point>::new());
    for mib in
        [1u64, 64, 256, 1024, 4096, 16384].into_iter().filter(|&m| m <= max_mib)
    {
        if mib + 512 > available_mib / 2 {
            observe!(
                lab,
                "skipped",
                "{mib} MiB skipped: only {available_mib} MiB \
                available (need twice that plus a margin)",
                mib,
                available_mib
            );
            continue;
        }
        let region = Region::new((mib << 20) as usize, huge, false);
        if !untouched {
            region.touch(1); // every page now has a page-table entry
        }
        let pte_kib = procfacts::status_field(me, "VmPTE:").unwrap_or(0);
        let n = runs as usize;
        // ANCHOR: fork_timing
        let fork_t = time_n(n, || {
            flush_stdout();
            // SAFETY: the child only calls _exit (it ends at once: no lifeline).
            match unsafe { fork() }.or_die("fork") {
                ForkResult::Child => _exit(0),
                ForkResult::Parent { child } => {
                    // It only exits: a short wait, which frees its page tables.
                    waitpid(child, None).or_die("waitpid");
                }
            }
        });
        let vfork_t = time_n(n, || vfork_true(&prog, &mut stack));
        let spawn_t = time_n(n, || spawn_true(&prog));
        // ANCHOR_END: fork_timing
        let size = fmt_bytes(mib << 20);
        let anon_huge_kib = procfacts::smaps_rollup_field(me, "AnonHugePages:");
        let huge_text = match anon_huge_kib {
            Some(kib) if kib > 0 => {
                format!(" ({kib} KiB of the process in huge pages)")
            }
            _ => String::new(),
        };
        observe!(
            lab,
            "fork_latency",
            "{size} touched, page tables {pte_kib} KiB{huge_text}: fork {fork_ns}, \
             vfork+exec {vfork_ns}, posix_spawn {spawn_ns}",
            mib,
            pte_kib,
            fork_ns = Nanos(fork_t.median),
            vfork_ns = Nanos(vfork_t.median),
            spawn_ns = Nanos(spawn_t.median),
            fork_min_ns = Nanos(fork_t.min),
            vfork_min_ns = Nanos(vfork_t.min),
            spawn_min_ns = Nanos(spawn_t.min),
            anon_huge_kib
        );
        let d = |s: &Summary| fmt_duration(s.median);
        let pt = format!("{pte_kib} KiB");
        rows.push(vec![size, pt, d(&fork_t), d(&vfork_t), d(&spawn_t)]);
        points.push((mib, fork_t, vfork_t, spawn_t));
    }
    let heads = [
        "touched",
        "page tables",
        "fork+_exit+wait",
        "vfork+exec true",
        "posix_spawn true",
    ];
    lab.table("fork_latency_table", &heads, &rows);
    judge(lab, &points);
}

/// The checks, from the smallest and the largest size measured.
fn judge(lab: &mut Lab, points: &[Point]) {
    let (Some(&(m0, f0, v0, s0)), Some(&(m1, f1, v1, s1))) =
        (points.first(), points.last())
    else {
        lab.not_observed("fork_grows_with_memory", "no size fitted in memory");
    };
    let secs = |d: Duration| d.as_secs_f64();
    let per_gib =
        (secs(f1.median) - secs(f0.median)) / ((m1 - m0) as f64 / 1024.0).max(1e-9);
    let per = fmt_duration(Duration::from_secs_f64(per_gib.max(0.0)));
    let (from, to) = (fmt_bytes(m0 << 20), fmt_bytes(m1 << 20));
    observe!(
        lab,
        "fork_cost_per_gib",
        "fork + exit + wait costs {per} more per GiB of touched memory ({from} -> {to}, \
         medians)",
        from_mib = m0,
        to_mib = m1,
        fork_ns_per_gib = (per_gib * 1e9) as i64
    );
    // ANCHOR: judge
    let growth = secs(f1.min) / secs(f0.min).max(1e-12); // fastest runs
    let moved = |a: Duration, b: Duration| Nanos(b.abs_diff(a));
    let (fork_moved_ns, vfork_moved_ns, spawn_moved_ns) =
        (moved(f0.min, f1.min), moved(v0.min, v1.min), moved(s0.min, s1.min));
    let pct = |m: Nanos| 100.0 * secs(m.0) / secs(fork_moved_ns.0).max(1e-12);
    let (v, s) = (pct(vfork_moved_ns), pct(spawn_moved_ns));
    check!(lab, "fork_grows_with_memory", m1 >= 64 && growth > 4.0,
        "fork + exit + wait takes over four times as long with {to} as with {from} \
         (fastest runs: {growth:.1}x)", growth);
    check!(
        lab,
        "spawn_stays_flat",
        m1 >= 64 && v < 25.0 && s < 25.0,
        "vfork+exec and posix_spawn moved by less than a quarter of fork's growth \
         (fastest runs: {v:.1}% and {s:.1}% of it): they copy no page tables",
        fork_moved_ns,
        vfork_moved_ns,
        spawn_moved_ns
    );
    // ANCHOR_END: judge
}
