//! Part 9: the seed's claim, "a zombie takes little memory, but too many zombies can
//! slow the system down", judged by the figures of parts 7 and 8 (an observation, not
//! a check: timings are not verdicts). Chapter: book/src/14-pid1.md

use crate::exhaustion::Limit;
use crate::figures::Row;
use proclab::measure::fmt_duration;
use proclab::{observe, procfacts, Lab};

/// A ratio of two durations, 1.0 when the first is zero.
fn ratio(now: std::time::Duration, base: std::time::Duration) -> f64 {
    now.as_secs_f64() / base.as_secs_f64().max(1e-9)
}

pub fn run(lab: &mut Lab, rows: &[Row], limit: Option<&Limit>) {
    lab.section("9. \"Many zombies slow the system\": what the figures say");
    let (base, top) = (&rows[0], &rows[rows.len() - 1]);
    let n = top.n;
    if n == 0 {
        let why = "no zombies were held in part 7: nothing to judge";
        observe!(lab, "seed_claim", "{why}", why);
        return;
    }
    let total_kib = top.unreclaimable_kib.saturating_sub(base.unreclaimable_kib);
    let per_zombie_kib = total_kib as f64 / n as f64;
    let mem_total_kib = procfacts::meminfo_field("MemTotal:").unwrap_or(1).max(1);
    let share = 100.0 * total_kib as f64 / mem_total_kib as f64;
    let little_memory = share < 1.0;
    let (scan_x, fork_x) = (ratio(top.scan, base.scan), ratio(top.fork, base.fork));
    let scan_slower = scan_x >= 2.0;
    let fork_slower = fork_x >= 1.5;
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let limit_text = match limit {
        Some(l) if l.errno != 0 => format!(
            "at pids.max {} the fork after {} zombies failed (part 8)",
            l.max, l.made
        ),
        _ => "part 8 did not run".to_string(),
    };
    let (scan0, scan1) = (fmt_duration(base.scan), fmt_duration(top.scan));
    let (fork0, fork1) = (fmt_duration(base.fork), fmt_duration(top.fork));
    let noise = match n < 1000 {
        true => " (with fewer than 1000 zombies these are mostly noise)",
        false => "",
    };
    observe!(
        lab,
        "seed_claim",
        "\"little memory\": {per_zombie_kib:.1} KiB of unreclaimable kernel memory \
         per zombie, {n} zombies {total_kib} KiB = {share:.2}% of this machine's \
         memory{noise} (held: {little_memory}). \"Slows the system\": with {n} zombies a \
         /proc scan took {scan_x:.1}x as long ({scan0} -> {scan1}; held: \
         {scan_slower}), a fork {fork_x:.2}x ({fork0} -> {fork1}; held: \
         {fork_slower}). What runs out is pids: {n} of pid_max {pid_max}, and \
         {limit_text}",
        n,
        per_zombie_kib,
        total_kib,
        share,
        noise,
        little_memory,
        scan_x,
        scan0,
        scan1,
        scan_slower,
        fork_x,
        fork0,
        fork1,
        fork_slower,
        pid_max,
        limit_text
    );
}
