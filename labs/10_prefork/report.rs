//! The observations of the prefork lab: each one's JSON fields and its human line. The lab
//! decides what to observe and checks it; this file only words it.

use super::cli::{Args, Model};
use super::client::{ok, started, Log};
use super::master::Death;
use crate::http::{worker_of, Resp};
use nix::sys::signal::Signal;
use nix::unistd::{getpid, Pid};
use proclab::{plain, Lab};
use serde_json::json;
use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

pub fn listening(lab: &mut Lab, args: &Args, port: u16, workers: usize) {
    let (model, reuseport) = (args.model, args.reuseport);
    lab.observe(
        "listening",
        json!({"port": port, "workers": workers, "model": format!("{model:?}").to_lowercase(),
               "reuseport": reuseport, "pid": getpid().as_raw()}),
        format_args!(
            "listening on http://127.0.0.1:{port}/ with {workers} {} ({})",
            if model == Model::Process {
                "worker processes"
            } else {
                "worker threads"
            },
            if reuseport {
                "SO_REUSEPORT: one socket per worker"
            } else {
                "one shared socket"
            }
        ),
    );
}

pub fn worker_started(lab: &mut Lab, child: Pid, why: &str) {
    lab.observe(
        "worker_started",
        json!({"pid": child.as_raw(), "why": why}),
        format_args!("master forked worker {child} ({why})"),
    );
}

/// A death as waitpid decoded it (`cause`), and what the master does about it.
pub fn worker_died(
    lab: &mut Lab,
    d: &Death,
    cause: &str,
    age: Duration,
    replace: bool,
    delay: Duration,
) {
    let then = match (replace, delay.is_zero()) {
        (false, _) => "not replaced".to_string(),
        (true, true) => "replacing it".to_string(),
        (true, false) => {
            format!("crash loop: replacement in {} ms", delay.as_millis())
        }
    };
    let pid = d.pid;
    lab.observe(
        "worker_died",
        json!({"pid": pid.as_raw(), "code": d.code, "signal": d.signal.map(|s| s.as_str()),
               "age_ms": age.as_millis() as u64, "replaced": replace, "delay_ms": delay.as_millis() as u64}),
        format_args!("waitpid: worker {pid} {cause} after {:.1} s; {then}", age.as_secs_f64()),
    );
}

pub fn stop(lab: &mut Lab, sig: Signal, why: &str, workers: usize) {
    lab.observe(
        "stop",
        json!({"signal": sig.as_str(), "workers": workers}),
        format_args!("{why}: {sig} to {workers} workers"),
    );
}

pub fn worker_socket(
    lab: &mut Lab,
    pid: Pid,
    fd: RawFd,
    sock: &str,
    accepting: bool,
) {
    lab.observe(
        "worker_socket",
        json!({"pid": pid.as_raw(), "fd": fd, "socket": sock, "in_accept4": accepting}),
        format_args!(
            "worker {pid}: fd {fd} -> {sock}; /proc/{pid}/syscall: {}",
            if accepting {
                "blocked in accept4"
            } else {
                "not seen in accept4"
            }
        ),
    );
}

/// The table of requests per worker.
pub fn spread(lab: &mut Lab, per_worker: &BTreeMap<i32, usize>) {
    let total: usize = per_worker.values().sum();
    let rows: Vec<Vec<String>> = per_worker
        .iter()
        .map(|(pid, k)| {
            vec![
                pid.to_string(),
                k.to_string(),
                format!("{:.0}%", 100.0 * *k as f64 / total.max(1) as f64),
            ]
        })
        .collect();
    plain!("  3 clients x 20 requests, one connection each:");
    lab.table("spread", &["worker", "requests", "share"], &rows);
}

pub fn keepalive(lab: &mut Lab, ka: &[i32]) {
    lab.observe(
        "keepalive",
        json!({"workers": ka}),
        format_args!("10 requests on one keep-alive connection were served by worker(s) {ka:?}"),
    );
}

/// What the load saw before the kills, between the kills and waitpid's report of both
/// deaths, and after it (and how much of that the `new` workers served).
pub fn under_load(
    lab: &mut Lab,
    log: &Log,
    killed_at: Instant,
    dead_at: Instant,
    new: &[Pid],
) {
    let failed = |rs: &[&Resp]| rs.iter().filter(|r| !ok(r)).count();
    let failed_before = failed(&started(log, ..killed_at));
    let window = started(log, killed_at..dead_at);
    let (failed_window, window) = (failed(&window), window.len());
    let after = started(log, dead_at..);
    let after_ok = after.len() - failed(&after);
    let new_served = after
        .iter()
        .filter_map(|r| r.as_ref().ok().and_then(|(_, b)| worker_of(b)))
        .filter(|p| new.iter().any(|n| n.as_raw() == *p))
        .count();
    let first_error = log.iter().find_map(|(_, r)| r.as_ref().err().cloned());
    lab.observe(
        "under_load",
        json!({"requests": log.len(), "failed_before_kill": failed_before, "in_window": window,
               "failed_in_window": failed_window, "after_death": after.len(), "after_death_ok": after_ok,
               "new_workers": new.iter().map(|p| p.as_raw()).collect::<Vec<_>>(), "served_by_new": new_served,
               "first_error": first_error}),
        format_args!(
            "{} requests: {failed_before} failed of those started before the kills, {failed_window} of the {window} started between the kills and waitpid's report, and {after_ok} of {} started after it succeeded ({new_served} served by the new workers)",
            log.len(),
            after.len()
        ),
    );
}

pub fn in_flight(lab: &mut Lab, sleeper: Option<Pid>) {
    lab.observe(
        "in_flight",
        json!({"pid": sleeper.map(|p| p.as_raw())}),
        match sleeper {
            Some(p) => format!("worker {p} is in clock_nanosleep (/proc/{p}/syscall): the request is in flight"),
            None => "no worker was seen serving /work".into(),
        },
    );
}

pub fn in_flight_answer(lab: &mut Lab, answer: &Resp, stopped_in: Duration) {
    lab.observe(
        "in_flight_answer",
        json!({"ok": ok(answer), "answer": format!("{answer:?}"), "stop_ms": stopped_in.as_millis() as u64}),
        format_args!(
            "the in-flight request got {answer:?}; all workers gone {:.2} s after SIGTERM",
            stopped_in.as_secs_f64()
        ),
    );
}

pub fn after_stop(
    lab: &mut Lab,
    clean: usize,
    workers: usize,
    stragglers: usize,
    refused: bool,
) {
    lab.observe(
        "after_stop",
        json!({"exited_0": clean, "workers": workers, "stragglers": stragglers, "refused": refused}),
        format_args!(
            "{clean} of {workers} workers exited with code 0, {stragglers} needed SIGKILL; a new connection is {}",
            if refused {
                "refused (the port is closed)"
            } else {
                "NOT refused"
            }
        ),
    );
}
