mod common;
use common::*;
use serde_json::Value;
use std::sync::OnceLock;

/// One run with the queue held 200 ms and 5 consumers, shared by the tests that only read it.
fn run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        run_json(
            "pool",
            &[
                "--python",
                "never",
                "--tasks",
                "2000",
                "--hold-ms",
                "200",
                "--consumers",
                "5",
            ],
        )
    })
}

fn num(v: &Value, field: &str) -> i64 {
    v[field].as_i64().unwrap_or_else(|| panic!("{field} is not a number in {v}"))
}

#[test]
fn the_run_verifies_and_leaves_no_worker() {
    let r = run(); // run_json has already asserted that no process of the run is alive
    r.assert_verified();
    let workers = r.observations("worker");
    assert_eq!(workers.len(), 4, "default: 4 workers");
    let exits = r.observations("worker_exit");
    assert_eq!(exits.len(), 4, "every worker of the pool at the end was reaped");
    for e in exits {
        assert_eq!(e["status"]["exited"], 0, "{e}");
        assert_eq!(e["in_time"], true, "{e}");
        assert_eq!(e["gone"], true, "{e}");
    }
}

#[test]
fn map_returns_one_result_per_input_in_order() {
    let r = run();
    let m = r.observation("map");
    assert_eq!(m["results"], m["inputs"]);
    assert_eq!(
        m["right"], m["inputs"],
        "every result equals the serial answer at its own index"
    );
    assert_eq!(m["lost"], 0);
    assert_eq!(m["duplicates"], 0);
    assert!(r.check("map_exact"));
    // On demand: the slow task's result came after most of the others.
    let o = r.observation("on_demand");
    assert!(num(o, "finished_before_it") >= num(o, "tasks") / 2, "{o}");
    // The others took the slow task's worker's share: it did few tasks.
    let even = o["even_share"].as_f64().unwrap();
    assert!(2.0 * (num(o, "slow_worker_tasks") as f64) <= even, "{o}");
}

#[test]
fn killed_worker_is_replaced_and_its_task_retried_once() {
    let r = run();
    let killed = r.observations("killed");
    assert_eq!(killed.len(), 3, "task 7 once, task 11 twice");
    let died = r.observations("died");
    assert_eq!(died.len(), 3);
    for k in &killed {
        let d = died
            .iter()
            .find(|d| d["pid"] == k["pid"])
            .unwrap_or_else(|| panic!("killed worker {k} was not reaped"));
        assert_eq!(d["status"]["signal"], "SIGKILL", "waitpid status of {d}");
        assert_eq!(d["task"], k["task"], "the task it was running is known: {d}");
    }
    let master = r.observations("worker")[0]["ppid"].clone();
    let replaced = r.observations("replaced");
    assert_eq!(replaced.len(), 3);
    for p in &replaced {
        assert_ne!(p["new_pid"], p["old_pid"]);
        assert_eq!(
            p["ppid"], master,
            "the replacement is a child of the master: {p}"
        );
    }
    let retried = r.observations("retried");
    assert!(retried.iter().any(|o| o["task"] == 7 && o["attempt"] == 2));
    assert!(retried.iter().any(|o| o["task"] == 11 && o["attempt"] == 2));
    assert!(retried.iter().all(|o| o["attempt"] == 2), "never a third attempt");
    let gave_up = r.observation("gave_up");
    assert_eq!(gave_up["task"], 11);
    assert_eq!(gave_up["attempts"], 2);
    assert_eq!(r.observation("retry_outcome")["once_ok"], true);
    let m = r.observation("map_after_crash");
    assert_eq!(m["results"], m["inputs"]);
    assert_eq!(num(m, "right"), num(m, "inputs") - 1, "all but the given-up task");
    assert_eq!(m["lost"], 0);
    assert_eq!(m["duplicates"], 0);
}

#[test]
fn full_queue_blocks_the_producer() {
    let r = run();
    let b = r.observation("back_pressure");
    assert_eq!(b["state"], "S", "{b}");
    assert_eq!(b["queued_bytes"], b["capacity"], "the queue was exactly full: {b}");
    assert_eq!(b["sent"], b["capacity_messages"], "{b}");
    let p = r.observation("producer_blocked");
    assert_eq!(
        p["sent_while_held"], b["sent"],
        "nothing more was sent while held: {p}"
    );
    assert!(num(p, "held_full_us") >= 200_000, "held for --hold-ms: {p}");
    assert!(
        num(p, "longest_write_us") >= num(p, "held_full_us"),
        "one write(2) blocked for the whole time the queue stayed full: {p}"
    );
    assert_eq!(p["status"]["exited"], 0, "{p}");
}

#[test]
fn poison_pill_reaches_every_consumer() {
    let r = run();
    let exits = r.observations("consumer_exit");
    assert_eq!(exits.len(), 5);
    for e in &exits {
        assert_eq!(e["pill"], 1, "{e}");
        assert_eq!(e["status"]["exited"], 0, "{e}");
    }
    let t = r.observation("queue_totals");
    assert_eq!(t["taken"], t["sent"]);
    assert_eq!(t["seq_sum"], t["want_seq_sum"]);
    assert_eq!(t["torn"], 0);
    let taken: i64 = exits.iter().map(|e| num(e, "taken")).sum();
    assert_eq!(taken, num(t, "sent"), "tasks per consumer add up");
}

#[test]
fn the_three_pools_agree() {
    let r = run();
    assert!(r.check("three_ways_agree"));
    let table = r.observation("three_ways");
    let rows = table["rows"].as_array().unwrap();
    for pool in ["process pool", "thread pool (crossbeam)", "rayon"] {
        assert_eq!(
            rows.iter().filter(|row| row[0] == pool).count(),
            2,
            "{pool}: tiny and heavy"
        );
    }
    assert_eq!(r.observation("python")["status"], "skipped");
    // The timing claims are shown, held or not, and never judged.
    for kind in ["hand_off_order", "heavy_closer"] {
        assert!(r.observation(kind)["held"].is_boolean(), "{kind}");
    }
}

#[test]
fn python_is_timed_when_present_and_skipped_when_not() {
    let r =
        run_json("pool", &["--tasks", "500", "--hold-ms", "0", "--workers", "2"]);
    r.assert_verified();
    let py = r.observation("python");
    let present = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        assert_eq!(py["status"], "measured", "{py}");
        assert_eq!(
            py["same_results"], true,
            "Python computed the same answers: {py}"
        );
        assert!(py["python_per_task_us"].as_f64().unwrap() > 0.0);
        assert!(py["held"].is_boolean(), "shown as held or not: {py}");
    } else {
        assert_eq!(py["status"], "skipped", "{py}");
    }
}

#[test]
fn without_python3_the_comparison_is_skipped_and_says_how_to_install_it() {
    let empty = std::env::temp_dir().join("proclab-pool-no-python");
    std::fs::create_dir_all(&empty).unwrap();
    let r = run_json_env(
        "pool",
        &["--tasks", "500", "--hold-ms", "0", "--workers", "2"],
        &[("PATH", empty.to_str().unwrap())],
    );
    r.assert_verified();
    let py = r.observation("python");
    assert_eq!(py["status"], "skipped", "{py}");
    assert!(py["why"].as_str().unwrap().contains("install python3"), "{py}");
}

/// Quick runs for the tests that remove a phenomenon: no Python, short waits.
const QUICK: &[&str] = &[
    "--python",
    "never",
    "--tasks",
    "500",
    "--hold-ms",
    "0",
    "--deadline-ms",
    "1000",
];

#[test]
fn a_killed_workers_task_not_retried_is_lost_and_the_verdict_turns() {
    // One thing changed: the master forgets the task the dead worker was running.
    let r = run_removed("pool", QUICK, "no_retry");
    r.assert_not_observed("map_exact_after_crash");
    r.assert_not_observed("retried_once");
    assert_eq!(num(r.observation("map_after_crash"), "lost"), 2, "tasks 7 and 11");
}

#[test]
fn a_queue_that_holds_the_whole_job_never_pushes_back() {
    // One thing changed: the pipe keeps its default size, more than the 2000 messages.
    let r = run_removed("pool", QUICK, "unbounded_queue");
    r.assert_not_observed("back_pressure");
    assert!(r.check("poison_pill_all"), "only the back-pressure is gone");
}

#[test]
fn a_lost_stop_pill_leaves_a_worker_running_and_the_verdict_turns() {
    // One thing changed: the last worker gets no STOP. It waits for work until the
    // deadline; then the lab kills it, and says so.
    let r = run_removed("pool", QUICK, "lost_pill");
    r.assert_not_observed("pool_shutdown");
    let late: Vec<_> = r
        .observations("worker_exit")
        .into_iter()
        .filter(|e| e["in_time"] == false)
        .collect();
    assert_eq!(late.len(), 1, "one worker had no pill");
    assert_eq!(late[0]["status"]["signal"], "SIGKILL");
}

#[test]
fn a_lost_queue_pill_leaves_a_consumer_without_one() {
    let r = run_removed("pool", QUICK, "lost_queue_pill");
    r.assert_not_observed("poison_pill_all");
    let without = r
        .observations("consumer_exit")
        .into_iter()
        .filter(|e| e["pill"] == 0)
        .count();
    assert_eq!(without, 1, "the consumer with no pill saw end of file instead");
}

#[test]
fn a_static_split_does_not_balance_a_slow_task() {
    // One thing changed: the pool hands each worker a fixed share of the tasks, decided
    // in advance, instead of the next task when it has room. The slow task's worker then
    // does its whole share; most results still arrive before the slow one.
    let r = run_removed("pool", QUICK, "static_split");
    r.assert_not_observed("on_demand");
    let o = r.observation("on_demand");
    assert_eq!(num(o, "slow_worker_tasks"), 250, "1000 tasks, 4 workers: {o}");
    assert!(r.check("map_exact"), "only the hand-out changed");
}

#[test]
fn one_worker_cannot_carry_on_past_a_slow_task() {
    // Not a test switch but a flag: with one worker every task waits behind the slow one.
    let mut args = QUICK.to_vec();
    args.extend(["--workers", "1"]);
    let r = run_json("pool", &args);
    r.assert_not_observed("on_demand");
}

#[test]
fn sigint_in_the_middle_leaves_no_worker() {
    // --hold keeps the queue full, the producer blocked and the consumers waiting, while the
    // pool's workers are alive: interrupt then.
    let mut s = start_json("pool", &["--hold-ms", "30000", "--python", "never"]);
    s.wait_for(|v| v["event"] == "observation" && v["kind"] == "back_pressure")
        .expect("queue full");
    interrupt_dies_of(s, libc::SIGINT);
}

#[test]
fn sigint_while_python_runs_leaves_no_python_worker() {
    let mut s = start_json(
        "pool",
        &["--hold-ms", "0", "--tasks", "200000", "--workers", "2"],
    );
    let started = s.wait_for(|v| {
        v["event"] == "observation"
            && (v["kind"] == "python_started" || v["kind"] == "python")
    });
    let started = started.expect("reached the Python part");
    let skipped = started["kind"] == "python";
    let status = interrupt(s, libc::SIGINT); // asserts no tagged process (python3 and its Pool) is left
    use std::os::unix::process::ExitStatusExt;
    if !skipped {
        assert_eq!(status.signal(), Some(libc::SIGINT));
    }
}

#[test]
fn bad_flags_exit_2() {
    assert_usage_error("pool", &["--workers", "0"]);
    assert_usage_error("pool", &["--workers", "65"]);
    assert_usage_error("pool", &["--depth", "0"]);
    assert_usage_error("pool", &["--tasks", "5"]);
    assert_usage_error("pool", &["--consumers", "17"]);
    assert_usage_error("pool", &["--hold-ms", "-1"]);
    assert_usage_error("pool", &["--hold", "100"]);
    assert_usage_error("pool", &["--deadline-ms", "999"]);
    assert_usage_error("pool", &["--python", "sometimes"]);
    assert_usage_error("pool", &["--no-such-flag"]);
}
