//! The observations of the prefork lab: each one's JSON fields and its human line. The lab
//! decides what to observe and checks it; this file only words it.

use super::cli::{Args, Model};
use super::client::{ok, started, Log};
use super::master::Death;
use crate::http::{worker_of, Resp};
use nix::sys::signal::Signal;
use nix::unistd::{getpid, Pid};
use proclab::{observe, Lab};
use serde_json::json;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

pub fn listening(
    lab: &mut Lab,
    args: &Args,
    port: u16,
    workers: usize,
    reuseport: bool,
) {
    let model = args.model;
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

/// A death as waitpid told it, and what the master does about it.
pub fn worker_died(
    lab: &mut Lab,
    d: &Death,
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
    observe!(
        lab,
        "worker_died",
        "waitpid: worker {pid} {status} after {age_ms} ms; {then}",
        pid = d.pid.as_raw(),
        status = d.status,
        age_ms = age.as_millis() as u64,
        replaced = replace,
        delay_ms = delay.as_millis() as u64
    );
}

pub fn stop(lab: &mut Lab, sig: Signal, why: &str, workers: usize) {
    lab.observe(
        "stop",
        json!({"signal": sig.as_str(), "workers": workers}),
        format_args!("{why}: {sig} to {workers} workers"),
    );
}

pub fn worker_socket(lab: &mut Lab, pid: Pid, fd: Option<RawFd>, sock: &str) {
    let seen = match fd {
        Some(fd) => format!("blocked in accept4 on fd {fd} -> {sock}"),
        None => "not seen in accept4".into(),
    };
    observe!(
        lab,
        "worker_socket",
        "worker {pid}: /proc/{pid}/syscall: {seen}",
        pid = pid.as_raw(),
        fd,
        socket = sock,
        in_accept4 = fd.is_some()
    );
}

pub fn keepalive(lab: &mut Lab, answered: usize, ka: &[i32]) {
    let pids = ka.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ");
    observe!(
        lab,
        "keepalive",
        "{answered} of 10 requests on one keep-alive connection were answered, \
         by worker(s) {pids}",
        answered,
        workers = ka
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
            Some(p) => format!("worker {p} was in clock_nanosleep (/proc/{p}/syscall) when SIGTERM was sent: the request was in flight"),
            None => "no worker was seen serving /work".into(),
        },
    );
}

pub fn in_flight_answer(lab: &mut Lab, answer: &Resp, stopped_in: Duration) {
    let text = match answer {
        Ok((code, body)) => format!("{code} \"{}\"", body.trim_end()),
        Err(e) => format!("no answer ({e})"),
    };
    observe!(
        lab,
        "in_flight_answer",
        "the in-flight request got {answer}; all workers gone {stop_ms} ms after SIGTERM",
        ok = ok(answer),
        answer = text,
        stop_ms = stopped_in.as_millis() as u64
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
