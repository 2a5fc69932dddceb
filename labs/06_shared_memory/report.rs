//! The shm lab's reporting: each observation as JSON fields and a human line, the tables,
//! and the long check texts. The lab file decides what is checked; this only says it.

use super::Method;
use nix::unistd::Pid;
use proclab::measure::{fmt_bytes, fmt_duration, fmt_rate};
use proclab::{say, Lab, Status};
use serde_json::json;
use std::fs::Metadata;
use std::time::Duration;

pub fn copies(
    lab: &mut Lab,
    child: Pid,
    private: u64,
    shared: u64,
    status: Status,
) {
    lab.observe(
        "copies",
        json!({"child": child.as_raw(), "private": private, "shared": shared, "written": 42, "status": status}),
        format_args!("child {child} wrote 42 to both and {status}; the parent reads private = {private}, MAP_SHARED = {shared}"),
    );
}

pub fn entry_exists(
    lab: &mut Lab,
    name: &str,
    path: &str,
    meta: Option<&Metadata>,
) {
    lab.observe(
        "shm_entry",
        json!({"phase": "exists", "name": name, "path": path, "exists": meta.is_some(), "size": meta.map(|m| m.len())}),
        format_args!("{path} exists, {} bytes", meta.map_or(0, |m| m.len())),
    );
}

pub fn peer(
    lab: &mut Lab,
    pid: Pid,
    pid_in_segment: u32,
    maps_before: u32,
    echo: &[u8],
    message: &str,
    status: Status,
) {
    let echo = String::from_utf8_lossy(echo);
    lab.observe(
        "peer",
        json!({"pid": pid.as_raw(), "pid_in_segment": pid_in_segment, "maps_before": maps_before,
               "echo": echo, "message": message, "status": status}),
        format_args!(
            "peer {pid} (exec'd, {maps_before} mappings of the segment in its /proc/self/maps before shm_open) read {echo:?} and wrote it back; it {status}"
        ),
    );
}

/// Keep the segment named for `ms` milliseconds (`--linger-ms`), so a person can look at it.
pub fn linger(ms: u64) {
    if ms > 0 {
        say!(
            "the segment lingers {ms} ms: try `ls -l /dev/shm` in another terminal"
        );
        std::thread::sleep(Duration::from_millis(ms));
    }
}

pub fn entry_unlinked(
    lab: &mut Lab,
    name: &str,
    path: &str,
    gone: bool,
    message: &str,
    still: bool,
) {
    lab.observe(
        "shm_entry",
        json!({"phase": "unlinked", "name": name, "path": path, "exists": !gone, "mapping_still_readable": still}),
        format_args!(
            "after shm_unlink {path} {}; the parent's mapping still reads {message:?}: {still}",
            if gone { "is gone" } else { "still exists" }
        ),
    );
}

/// One counting run: its observation, and its row of the counters table.
pub struct Count {
    pub method: Method,
    pub procs: usize,
    pub iters: u64,
    pub expected: u64,
    pub actual: u64,
    pub took: Duration,
    /// Every counting process exited 0 (none hung or died).
    pub all_exited: bool,
}

impl Count {
    pub fn new(
        method: Method,
        procs: usize,
        iters: u64,
        actual: u64,
        took: Duration,
        all_exited: bool,
    ) -> Count {
        let expected = procs as u64 * iters;
        Count { method, procs, iters, expected, actual, took, all_exited }
    }

    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.actual)
    }
}

pub fn counter(lab: &mut Lab, c: &Count) {
    let (method, expected, actual, lost) =
        (c.method, c.expected, c.actual, c.lost());
    lab.observe(
        "counter",
        json!({"method": method.name(), "procs": c.procs, "iters": c.iters,
               "expected": expected, "actual": actual, "lost": lost, "ns": c.took.as_nanos() as u64, "all_exited": c.all_exited}),
        format_args!(
            "{method:?}: expected {expected}, counted {actual}, lost {lost} in {}",
            fmt_duration(c.took)
        ),
    );
}

pub fn counters_table(lab: &mut Lab, counts: &[Count]) {
    let rows: Vec<Vec<String>> = (counts.iter())
        .map(|c| {
            let per = c.took / c.expected.max(1) as u32;
            vec![
                c.method.name(),
                c.expected.to_string(),
                c.actual.to_string(),
                c.lost().to_string(),
                fmt_duration(c.took),
                fmt_duration(per),
            ]
        })
        .collect();
    lab.table(
        "counters",
        &["method", "expected", "actual", "lost", "time", "per increment"],
        &rows,
    );
}

/// The text of the `updates_lost` check: how many were lost, or why none was.
pub fn lost_text(c: &Count, cpus: usize) -> String {
    let (lost, expected) = (c.lost(), c.expected);
    if lost > 0 {
        format!(
            "{} processes pinned to {} CPU(s) lost {lost} of {expected} increments ({:.1}%): load, add, store is not one step",
            c.procs,
            cpus.min(c.procs),
            lost as f64 * 100.0 / expected as f64
        )
    } else {
        format!("no update was lost on this run ({cpus} CPU(s)): the race is real but did not show; try more --iters")
    }
}

pub fn robust(
    lab: &mut Lab,
    holder: Pid,
    status: Status,
    first: i32,
    unlocked: i32,
    second: i32,
) {
    lab.observe(
        "robust",
        json!({"holder": holder.as_raw(), "status": status, "first_lock": first,
               "first_lock_name": errno_name(first), "unlock": unlocked, "second_lock": second}),
        format_args!(
            "holder {holder} {status} holding the mutex; the next lock returned {} ({first}), after pthread_mutex_consistent the next returned {second}",
            errno_name(first)
        ),
    );
}

fn errno_name(code: i32) -> String {
    match code {
        0 => "0".into(),
        libc::EOWNERDEAD => "EOWNERDEAD".into(),
        libc::ETIMEDOUT => "ETIMEDOUT".into(),
        libc::ENOTRECOVERABLE => "ENOTRECOVERABLE".into(),
        other => format!("{:?}", nix::errno::Errno::from_raw(other)),
    }
}

/// Section 6: the table of both transfers, then the observation with the speed-up.
pub fn zero_copy(
    lab: &mut Lab,
    total: usize,
    chunk: usize,
    cpu: usize,
    shm: (usize, Duration),
    pipe: (usize, Duration),
) {
    let row = |path: &str, (ok, took): (usize, Duration)| {
        vec![
            path.into(),
            fmt_bytes(total as u64),
            fmt_duration(took),
            fmt_rate(total as u64, took),
            ok.to_string(),
        ]
    };
    lab.table(
        "zero_copy_table",
        &["path", "moved", "time", "rate", "chunks verified"],
        &[
            row(&format!("shared-memory ring (CPU {cpu})"), shm),
            row(&format!("pipe (CPU {cpu})"), pipe),
        ],
    );
    let ((shm_ok, shm_time), (pipe_ok, pipe_time)) = (shm, pipe);
    let speedup = pipe_time.as_secs_f64() / shm_time.as_secs_f64().max(1e-12);
    let held = shm_time < pipe_time;
    lab.observe(
        "zero_copy",
        json!({"bytes": total, "chunk": chunk, "shm_ns": shm_time.as_nanos() as u64, "pipe_ns": pipe_time.as_nanos() as u64,
               "shm_chunks_ok": shm_ok, "pipe_chunks_ok": pipe_ok, "speedup": (speedup * 100.0).round() / 100.0, "held": held}),
        format_args!(
            "the ring moved {} {speedup:.1}x as fast as the pipe (fastest of 3 each; no copy through the kernel): ring faster {}",
            fmt_bytes(total as u64),
            if held { "held on this run" } else { "did not hold on this run" }
        ),
    );
}
