//! The pipe lab's reporting: each observation as JSON fields and a human line, and the
//! tables of sections 4, 5 and 7. The lab file decides what is checked; this only says it.
//! Nothing here runs in a forked process.

use super::bytes::Race;
use nix::unistd::Pid;
use proclab::measure::{fmt_bytes, fmt_duration, fmt_rate};
use proclab::procfacts::{self, state_name};
use proclab::{Lab, Status, Summary};
use serde_json::json;
use std::time::Duration;

/// A process the watchdog found asleep: pid, state letter, wchan.
pub type Stuck = (i32, char, String);

/// A process's state letter and wchan from /proc; `Z` when it is already gone.
pub fn state_wchan(pid: Pid) -> Stuck {
    let p = pid.as_raw();
    (p, procfacts::state(p).unwrap_or('Z'), procfacts::wchan(p).unwrap_or_default())
}

/// Section 1: what the parent sent and what the child counted, each (length, checksum).
pub fn oneway(
    lab: &mut Lab,
    child: Pid,
    sent: (u64, u64),
    received: (u64, u64),
    report_bytes: usize,
    status: Status,
) {
    let ((sent_len, sent_sum), (recv_len, recv_sum)) = (sent, received);
    lab.observe(
        "oneway",
        json!({"sent_len": sent_len, "sent_sum": format!("{sent_sum:016x}"), "recv_len": recv_len,
               "recv_sum": format!("{recv_sum:016x}"), "report_bytes": report_bytes, "status": status}),
        format_args!(
            "parent sent {} (FNV-1a {sent_sum:016x}); child {child} counted {recv_len} bytes (FNV-1a {recv_sum:016x}); it {status}",
            fmt_bytes(sent_len)
        ),
    );
}

pub fn eof(
    lab: &mut Lab,
    child: Pid,
    closes_own: bool,
    fired: bool,
    stuck: &[Stuck],
    status: Status,
    deadline_ms: u64,
) {
    let (state, wchan) =
        stuck.first().map_or(('?', ""), |(_, s, w)| (*s, w.as_str()));
    lab.observe(
        "eof",
        json!({"reader_closes_write_end": closes_own, "watchdog_fired": fired, "stuck": !stuck.is_empty(), "state": state.to_string(),
               "wchan": wchan, "status": status, "deadline_ms": deadline_ms}),
        if !stuck.is_empty() {
            format!(
                "reader {child} still blocked {deadline_ms} ms after the last writer closed: {}, wchan {wchan}; the watchdog ended it: {status}",
                state_name(state)
            )
        } else if status.code() == Some(0) {
            format!("reader {child} saw EOF and exited by itself: {status}")
        } else {
            format!("reader {child} was not seen asleep in pipe_read; it {status}")
        },
    );
}

pub fn capacity(lab: &mut Lab, filled: usize, size: usize) {
    lab.observe(
        "capacity",
        json!({"filled": filled, "f_getpipe_sz": size}),
        format_args!("non-blocking writes stopped with EAGAIN after {filled} bytes; F_GETPIPE_SZ says {size}"),
    );
}

/// Section 3: the blocking writer seen asleep (state, wchan), then drained.
pub fn parked(
    lab: &mut Lab,
    writer: Pid,
    seen: &Option<(char, String)>,
    queued: usize,
    drained: usize,
    total: usize,
    status: Status,
) {
    let (state, wchan) = seen.as_ref().map_or(('?', ""), |(s, w)| (*s, w.as_str()));
    lab.observe(
        "parked",
        json!({"state": state.to_string(), "wchan": wchan, "queued": queued, "drained": drained,
               "total": total, "status": status}),
        format_args!(
            "writer {writer} of {} sat in {} (wchan {wchan}) with {queued} bytes queued; after draining {drained} bytes it {status}",
            fmt_bytes(total as u64),
            state_name(state)
        ),
    );
}

pub fn setpipe_sz(
    lab: &mut Lab,
    asked: u32,
    granted: usize,
    now: usize,
    refilled: usize,
) {
    lab.observe(
        "setpipe_sz",
        json!({"asked": asked, "granted": granted, "f_getpipe_sz": now, "filled": refilled}),
        format_args!(
            "F_SETPIPE_SZ({asked}) granted {granted}; F_GETPIPE_SZ now {now}; the pipe filled up at {refilled} bytes"
        ),
    );
}

/// Section 4's rule: a big non-blocking write split, a PIPE_BUF write refused whole.
pub fn atomic_rule(
    lab: &mut Lab,
    size: usize,
    partial: usize,
    room: usize,
    small: nix::Result<usize>,
    before: usize,
    after: usize,
) {
    let pipe_buf = libc::PIPE_BUF;
    lab.observe(
        "split_write",
        json!({"asked": 2 * size, "written": partial, "capacity": size}),
        format_args!(
            "a non-blocking write of {} into an empty {} pipe returned {partial}: split",
            fmt_bytes(2 * size as u64),
            fmt_bytes(size as u64)
        ),
    );
    lab.observe(
        "atomic_write",
        json!({"room": room, "asked": pipe_buf, "result": format!("{small:?}"), "queued_before": before, "queued_after": after}),
        format_args!("with {room} bytes of room, a {pipe_buf}-byte write returned {small:?}; bytes queued {before} -> {after}"),
    );
}

pub fn race(lab: &mut Lab, writers: u32, records: u32, rec: usize, r: &Race) {
    let size = fmt_bytes(rec as u64);
    lab.observe(
        "race",
        json!({"record": rec, "writers": writers, "records": r.records, "torn": r.torn,
               "intact_per_writer": r.intact_per_writer, "bytes": r.total_bytes}),
        if r.torn == 0 && rec > libc::PIPE_BUF {
            format!("{writers} writers x {records} records of {size}: none tore on this run (above PIPE_BUF the kernel no longer promises atomicity; it does not promise tearing)")
        } else {
            format!("{writers} writers x {records} records of {size}: {} of {} records torn (mixed bytes of several writers)", r.torn, r.records)
        },
    );
}

pub fn race_table(lab: &mut Lab, races: &[(usize, Race)]) {
    let rows: Vec<Vec<String>> = races
        .iter()
        .map(|(rec, r)| {
            vec![
                fmt_bytes(*rec as u64),
                if *rec <= libc::PIPE_BUF { "<= PIPE_BUF" } else { "> PIPE_BUF" }
                    .to_string(),
                r.records.to_string(),
                r.torn.to_string(),
            ]
        })
        .collect();
    lab.table("race_table", &["record", "", "records", "torn"], &rows);
}

/// Section 5: the round-trip table, one row per CPU placement (label, summary, correct
/// replies), and, when the first two rows are same-CPU and cross-CPU, their ratio.
pub fn rtt(
    lab: &mut Lab,
    rows: &[(String, Summary, usize)],
    rounds: u32,
    compare: bool,
) {
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|(label, s, correct)| {
            vec![
                label.to_string(),
                fmt_duration(s.min),
                fmt_duration(s.median),
                fmt_duration(s.p99),
                format!("{correct}/{rounds}"),
            ]
        })
        .collect();
    lab.table(
        "rtt_table",
        &["placement", "min", "median", "p99", "correct replies"],
        &table,
    );
    if compare {
        let (same, cross) = (rows[0].1.median, rows[1].1.median);
        let ratio = cross.as_secs_f64() / same.as_secs_f64().max(1e-12);
        let held = cross > same;
        lab.observe(
            "rtt_ratio",
            json!({"same_ns": same.as_nanos() as u64, "cross_ns": cross.as_nanos() as u64, "ratio": (ratio * 100.0).round() / 100.0, "held": held}),
            format_args!("a round trip across CPUs took {ratio:.1}x one on the same CPU (median; two wake-ups each way round): slower across CPUs {}", if held { "held on this run" } else { "did not hold on this run" }),
        );
    }
}

pub fn exchange(
    lab: &mut Lab,
    message: usize,
    reader_first: bool,
    fired: bool,
    stuck: &[Stuck],
    statuses: &[Status],
) {
    let waits: Vec<String> = statuses.iter().map(|s| s.to_string()).collect();
    lab.observe(
        "exchange",
        json!({"message": message, "b_reads_first": reader_first, "watchdog_fired": fired,
               "stuck": stuck.iter().map(|(p, s, w)| json!({"pid": p, "state": s.to_string(), "wchan": w})).collect::<Vec<_>>(),
               "statuses": statuses}),
        if !stuck.is_empty() {
            let who: Vec<String> = stuck.iter().map(|(p, s, w)| format!("{p} {s} in {w}")).collect();
            format!("both sides wrote {} before reading: stuck [{}]; watchdog killed both", fmt_bytes(message as u64), who.join(", "))
        } else if reader_first {
            format!("B read A's whole message before writing its own: both finished ({})", waits.join(", "))
        } else {
            format!("both sides wrote first but were not seen stuck in pipe_write: {}", waits.join(", "))
        },
    );
}

pub fn sigpipe_disposition(lab: &mut Lab, ignored: bool) {
    lab.observe(
        "sigpipe_disposition",
        json!({"ignored": ignored}),
        format_args!(
            "this Rust program starts with SIGPIPE {}",
            if ignored {
                "ignored (the Rust runtime sets SIG_IGN before main)"
            } else {
                "at its default (terminate)"
            }
        ),
    );
}

pub fn sigpipe(lab: &mut Lab, default_action: bool, child: Pid, status: Status) {
    lab.observe(
        "sigpipe",
        json!({"sigpipe": if default_action { "default" } else { "ignored" }, "status": status}),
        format_args!(
            "SIGPIPE {}: the writer {child} {status}",
            if default_action { "at default" } else { "ignored" }
        ),
    );
}

/// Section 7: one row per write size: (chunk, bytes moved, pipe time, memcpy time).
pub fn throughput(
    lab: &mut Lab,
    total: usize,
    cpu: usize,
    rows: &[(usize, u64, Duration, Duration)],
) {
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|&(chunk, moved, took, copy)| {
            let ratio = copy.as_secs_f64() / took.as_secs_f64().max(1e-12);
            vec![
                fmt_bytes(chunk as u64),
                fmt_bytes(moved),
                fmt_rate(moved, took),
                fmt_rate(total as u64, copy),
                format!("{:.0}%", ratio * 100.0),
            ]
        })
        .collect();
    let placed = format!("write size (both on CPU {cpu})");
    lab.table(
        "throughput",
        &[&placed, "moved", "pipe", "memcpy", "pipe/memcpy"],
        &table,
    );
    let held = rows.iter().all(|&(_, _, took, copy)| took > copy);
    lab.observe(
        "below_memcpy",
        json!({"held": held}),
        format_args!(
            "the pipe slower than memcpy for every write size (fastest of 3 each): {}",
            if held { "held on this run" } else { "did not hold on this run" }
        ),
    );
}
