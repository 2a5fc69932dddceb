//! The deadlock lab's reporting: each observation (its JSON fields and its human line), the
//! tables, and reading the cycle out of a worker's report. Nothing here makes or breaks a
//! deadlock; `labs/07_deadlock.rs` does that and decides every check.

use super::cli::{Args, Role};
use super::inspect::{LockEdge, Task};
use nix::unistd::Pid;
use proclab::measure::fmt_duration;
use proclab::{say, Lab, Status};
use serde_json::{json, Value};
use std::time::Duration;

/// One row of the final table: what each scenario showed.
pub struct Outcome {
    pub scenario: &'static str,
    pub cycle: bool,
    pub detected: Option<Duration>,
    pub broken: bool,
    pub fix: String,
    pub fix_ok: bool,
}

/// The verdict table: one row per scenario.
pub fn verdicts(lab: &mut Lab, outcomes: &[Outcome]) {
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|o| {
            vec![
                o.scenario.to_string(),
                if o.cycle { "yes" } else { "NO" }.to_string(),
                o.detected.map(fmt_duration).unwrap_or_else(|| "-".into()),
                if o.broken { "yes" } else { "NO" }.to_string(),
                o.fix.clone(),
                if o.cycle && o.broken && o.fix_ok {
                    "verified"
                } else {
                    "NOT verified"
                }
                .to_string(),
            ]
        })
        .collect();
    lab.table(
        "verdicts",
        &["scenario", "cycle seen", "detected in", "broken", "fix", "verdict"],
        &rows,
    );
}

/// A JSON string's text ("?" if it is not a string).
pub fn txt(v: &Value) -> &str {
    v.as_str().unwrap_or("?")
}

/// The `"thread"` of each element of a JSON array.
fn thread_names(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|e| {
            e.iter()
                .filter_map(|e| e["thread"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The threads named in a worker's cycle report.
pub fn cycle_threads(ev: &Value) -> Vec<String> {
    thread_names(&ev["edges"])
}

/// The threads parking_lot's detector found deadlocked.
pub fn parking_lot_threads(c: &Value) -> Vec<String> {
    thread_names(&c["threads"])
}

/// A number in a worker's final report, if it finished.
pub fn field(d: &Option<Value>, key: &str) -> Option<u64> {
    d.as_ref().and_then(|d| d[key].as_u64())
}

/// The worker's wait-for graph, edge by edge; returns the edges.
pub fn show_cycle(lab: &mut Lab, name: &str, pid: Pid, rep: &Value) -> Vec<Value> {
    let edges = rep["edges"].as_array().cloned().unwrap_or_default();
    let text: Vec<String> = edges
        .iter()
        .map(|e| {
            let [t, h, w, b] =
                ["thread", "holds", "waits_for", "held_by"].map(|k| txt(&e[k]));
            format!("{t} holds {h}, waits for {w} (held by {b})")
        })
        .collect();
    let us = rep["detected_after_us"].as_u64().unwrap_or(0);
    lab.observe(
        "cycle",
        json!({"scenario": name, "pid": pid.as_raw(), "edges": edges, "detected_after_us": us}),
        format_args!(
            "wait-for graph of worker {pid}, {} after the last thread asked:\n      {}\n      -> back to the start: a cycle of {}",
            fmt_duration(Duration::from_micros(us)),
            text.join("\n      -> "),
            edges.len()
        ),
    );
    edges
}

/// parking_lot's answer with each thread's innermost frame of the lab's code, or that it was
/// not consulted (it had not answered by the deadline; only said if the worker's own graph
/// saw a cycle).
pub fn show_parking_lot(
    lab: &mut Lab,
    name: &str,
    confirmed: Option<&Value>,
    reported: bool,
) {
    match confirmed {
        Some(c) => {
            let threads = c["threads"].as_array().cloned().unwrap_or_default();
            let stuck: Vec<String> = threads
                .iter()
                .map(|t| format!("{} at {}", txt(&t["thread"]), txt(&t["frames"][0])))
                .collect();
            lab.observe(
                "parking_lot",
                json!({"scenario": name, "answered": true, "cycles": c["cycles"], "threads": threads, "after_us": c["after_us"]}),
                format_args!(
                    "parking_lot::deadlock::check_deadlock() answered {} later: {} cycle(s) of {} threads; their backtraces show where each waits:\n      {}",
                    fmt_duration(Duration::from_micros(c["after_us"].as_u64().unwrap_or(0))),
                    c["cycles"],
                    parking_lot_threads(c).len(),
                    stuck.join("\n      ")
                ),
            );
        }
        None if reported => lab.observe(
            "parking_lot",
            json!({"scenario": name, "answered": false, "cycles": null, "threads": null, "after_us": null}),
            "parking_lot's detector: not consulted (it had not answered by the deadline, still taking backtraces); the verdict rests on the wait-for graph and /proc",
        ),
        None => {}
    }
}

/// The worker's threads as /proc shows them, and the kernel stack of the first thread of
/// the cycle (if it could be read).
pub fn show_tasks(
    lab: &mut Lab,
    pid: Pid,
    tasks: &[Task],
    stack: &str,
    want: &[String],
) {
    lab.table(
        "tasks",
        &["tid", "thread", "state", "wchan"],
        &tasks
            .iter()
            .map(|t| {
                vec![t.0.to_string(), t.1.clone(), t.2.to_string(), t.3.clone()]
            })
            .collect::<Vec<_>>(),
    );
    let top: Vec<&str> = stack.lines().take(5).collect();
    if top.len() > 1 {
        lab.observe(
            "kernel_stack",
            json!({"pid": pid.as_raw(), "stack": top}),
            format_args!(
                "the kernel side of {}, {}",
                want.first().map(|s| s.as_str()).unwrap_or("?"),
                top.join("\n      ")
            ),
        );
    }
}

/// With --hold, leave the deadlock in place for a person to inspect it.
pub fn hold(lab: &mut Lab, hold_ms: u64, pid: Pid, look: &str) {
    if hold_ms > 0 {
        say!(
            "holding the deadlock {} ms: try {}",
            hold_ms,
            look.replace("PID", &pid.to_string())
        );
        lab.observe(
            "holding",
            json!({"pid": pid.as_raw(), "hold_ms": hold_ms}),
            format_args!("deadlock of {pid} held for {} ms", hold_ms),
        );
        std::thread::sleep(Duration::from_millis(hold_ms)); // only so a person can look
    }
}

/// How a deadlocked worker ended.
pub fn show_broken(
    lab: &mut Lab,
    name: &str,
    pid: Pid,
    status: &Status,
    fired: bool,
    took: Duration,
    args: &Args,
) {
    let (deadline_ms, hold_ms) = (args.deadline_ms, args.hold_ms);
    lab.observe(
        "broken",
        json!({"scenario": name, "pid": pid.as_raw(), "status": status, "watchdog_fired": fired,
               "ended_after_ms": took.as_millis() as u64, "deadline_ms": deadline_ms, "hold_ms": hold_ms}),
        format_args!(
            "broken: SIGKILL to worker {pid}, waitpid -> {status}; {} from its start to reaped{}",
            fmt_duration(took),
            if fired {
                " (the watchdog fired at the deadline)"
            } else {
                ""
            }
        ),
    );
}

/// How a fix run in a worker ended, with the worker's own summary.
pub fn show_fix(
    lab: &mut Lab,
    role: Role,
    done: &Option<Value>,
    fired: bool,
    status: &Status,
) {
    let us = field(done, "elapsed_us").unwrap_or(0);
    lab.observe(
        "fix",
        json!({"role": format!("{role:?}"), "finished": done.is_some(), "watchdog_fired": fired,
               "status": status, "report": done.clone().unwrap_or(Value::Null)}),
        format_args!(
            "{role:?}: {} in {}; {}",
            if done.is_some() { "finished" } else { "did NOT finish" },
            fmt_duration(Duration::from_micros(us)),
            done.as_ref().and_then(|d| d["summary"].as_str()).unwrap_or("no report")
        ),
    );
}

/// The four Coffman fixes side by side: (condition taken away, fix, its report).
pub fn fixes_table(lab: &mut Lab, fixes: &[(&str, &str, &Option<Value>)]) {
    let rows: Vec<Vec<String>> = fixes
        .iter()
        .map(|(cond, fix, d)| {
            vec![
                cond.to_string(),
                fix.to_string(),
                field(d, "elapsed_us")
                    .map(|us| fmt_duration(Duration::from_micros(us)))
                    .unwrap_or_else(|| "did not finish".into()),
                field(d, "retries")
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "0".into()),
            ]
        })
        .collect();
    lab.table("fixes", &["takes away", "fix", "time", "retries"], &rows);
}

/// The flock cycle as /proc/locks showed it, and both children's state and wait channel.
pub fn show_lock_cycle(
    lab: &mut Lab,
    [c1, c2]: [Pid; 2],
    edges: &[LockEdge],
    lines: &[String],
    [w1, w2]: [&str; 2],
    after: Duration,
) {
    lab.observe(
        "cycle",
        json!({"scenario": "processes", "lock": "flock",
               "edges": edges.iter().map(|e| json!({"pid": e.0, "holds": e.1, "waits_for": e.2, "held_by": e.3})).collect::<Vec<_>>(),
               "states": [{"pid": c1.as_raw(), "state": "S", "wchan": w1}, {"pid": c2.as_raw(), "state": "S", "wchan": w2}],
               "proc_locks": lines, "detected_after_us": after.as_micros() as u64}),
        format_args!(
            "/proc/locks, {} after both asked:\n      {}\n    child {} holds {}, waits for {} (held by {})\n    child {} holds {}, waits for {} (held by {})\n    both in state S: {} in {w1}, {} in {w2}",
            fmt_duration(after),
            lines.join("\n      "),
            edges[0].0, edges[0].1, edges[0].2, edges[0].3,
            edges[1].0, edges[1].1, edges[1].2, edges[1].3,
            c1, c2
        ),
    );
}

/// The flock deadlock broken by killing one child: the victim's and the survivor's ends.
pub fn show_lock_broken(
    lab: &mut Lab,
    [c2, c1]: [Pid; 2],
    [victim, survivor]: [&Status; 2],
    fired: bool,
    took: Duration,
    deadline_ms: u64,
) {
    lab.observe(
        "broken",
        json!({"scenario": "processes", "victim": c2.as_raw(), "victim_status": victim,
               "survivor": c1.as_raw(), "survivor_status": survivor, "watchdog_fired": fired,
               "ended_after_ms": took.as_millis() as u64, "deadline_ms": deadline_ms}),
        format_args!("broken: killed {c2} ({victim}); its flock locks were released, so {c1} got lock-b and ended: {survivor}"),
    );
}

/// The fcntl run: who was refused with which errno, and how the waiter ended.
pub fn show_edeadlk(
    lab: &mut Lab,
    [c1, c2]: [Pid; 2],
    [st1, st2]: [&Status; 2],
    waiter_was_blocked: bool,
) {
    let errno = st2.code().unwrap_or(-1);
    lab.observe(
        "edeadlk",
        json!({"refused": c2.as_raw(), "refused_status": st2, "errno": errno,
               "waiter": c1.as_raw(), "waiter_status": st1, "waiter_was_blocked": waiter_was_blocked}),
        format_args!(
            "child {c1} was blocked on lock-b; child {c2}'s F_SETLKW on lock-a came back at once with errno {errno} (EDEADLK); {c2} exited, so {c1} got lock-b: {st1}"
        ),
    );
}

/// Both processes of the lock-order fix, and how long they took.
pub fn show_lock_fix(
    lab: &mut Lab,
    [s1, s2]: [&Status; 2],
    fired: bool,
    took: Duration,
) {
    lab.observe(
        "fix",
        json!({"scenario": "processes", "finished": !fired, "statuses": [s1, s2], "elapsed_us": took.as_micros() as u64}),
        format_args!("same order (lock-a, then lock-b) in both: {s1}, {s2} in {}", fmt_duration(took)),
    );
}

/// Both writers asleep in pipe_write, each with its outgoing pipe full: (pid, wchan, bytes
/// queued in its pipe) for A and for B.
pub fn show_pipes_blocked(
    lab: &mut Lab,
    cap: usize,
    [(a, wa, qa), (b, wb, qb)]: [(Pid, &str, i32); 2],
    after: Duration,
) {
    lab.observe(
        "pipes_blocked",
        json!({"scenario": "pipes", "capacity": cap, "message": 2 * cap,
               "writers": [{"pid": a.as_raw(), "state": "S", "wchan": wa, "queued_in_its_pipe": qa},
                           {"pid": b.as_raw(), "state": "S", "wchan": wb, "queued_in_its_pipe": qb}],
               "detected_after_us": after.as_micros() as u64}),
        format_args!(
            "A {a}: state S in {wa}, pipe A->B holds {qa} of {cap} bytes (full); B {b}: state S in {wb}, pipe B->A holds {qb} (full)\n    A waits for B to read; B waits for A to read: a cycle, seen {} after the start",
            fmt_duration(after)
        ),
    );
}

/// Both pipe writers killed.
pub fn show_pipes_broken(lab: &mut Lab, [sa, sb]: [&Status; 2], took: Duration) {
    lab.observe(
        "broken",
        json!({"scenario": "pipes", "statuses": [sa, sb], "ended_after_ms": took.as_millis() as u64}),
        format_args!("broken: both killed ({sa}, {sb}) {} after the start", fmt_duration(took)),
    );
}

/// The pipe fix: every byte crossed both ways.
pub fn show_pipes_fix(
    lab: &mut Lab,
    bytes: usize,
    [sa, sb]: [&Status; 2],
    fired: bool,
    took: Duration,
) {
    lab.observe(
        "fix",
        json!({"scenario": "pipes", "finished": !fired, "bytes_each_way": bytes, "statuses": [sa, sb], "elapsed_us": took.as_micros() as u64}),
        format_args!("B reads first: {bytes} bytes each way, A {sa}, B {sb}, in {}", fmt_duration(took)),
    );
}
