//! io-models: the verdict of a quick run and its figures, and for every check a run
//! where its phenomenon is removed (one thing changed: a flag or a test switch), which
//! must end "not observed". One part of the lab at a time, with --quick; node's and
//! wrk's parts where they are installed, and a note where they are not.
mod common;
use common::*;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The lab measures throughput: its runs here take turns, so as not to load each other.
fn turn() -> MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    ONE.lock().unwrap_or_else(|p| p.into_inner())
}

fn check<'a>(run: &'a Run, name: &str) -> &'a Value {
    run.events
        .iter()
        .find(|e| e["event"] == "check" && e["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}:\n{}", run.stdout))
}

fn installed(name: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| d.join(name).is_file())
}

#[test]
fn a_quick_run_verifies_and_its_figures_say_why() {
    let _t = turn();
    let run = run_json("io-models", &["--quick"]);
    run.assert_verified();
    // One event loop: one process, one thread, every idle connection held; the
    // blocking models held one per worker and the normal client got nothing.
    let lp = check(&run, "loop_holds_idle");
    assert_eq!(
        (lp["threads"].as_u64(), lp["processes"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(lp["held"], 1000, "{lp}");
    let b = check(&run, "blocking_starve");
    assert_eq!(b["answers"], serde_json::json!([0, 0]), "{b}");
    assert!(b["queued"]
        .as_array()
        .unwrap()
        .iter()
        .all(|q| q.as_u64() >= Some(990)));
    // A connection: a thread costs at least a kernel stack, a loop's far less.
    let m = check(&run, "memory_per_connection");
    let (lk, tk) =
        (m["loop_kib"].as_f64().unwrap(), m["thread_kib"].as_f64().unwrap());
    assert!(tk >= 16.0 && lk < 4.0, "{m}");
    // On CPU work nobody passes the cores; with 90% waiting one thread has many
    // requests waiting at once.
    let c = check(&run, "cpu_ceiling");
    let cores = c["cores"].as_f64().unwrap();
    assert!(c["busy_each"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b.as_f64().unwrap() <= 1.15 * cores));
    assert!(check(&run, "timer_not_thread")["at_once"].as_f64().unwrap() >= 1.25);
    // The tables: five models in each load, three shares in the sweep and its rules.
    for kind in ["models", "load_cpu", "load_waiting", "load_idle", "load_slow"] {
        assert_eq!(
            run.observation(kind)["rows"].as_array().unwrap().len(),
            5,
            "{kind}"
        );
    }
    assert_eq!(run.observations("sweep").len(), 3);
    assert_eq!(run.observation("rules")["rows"].as_array().unwrap().len(), 3);
    assert_eq!(
        run.observations("rule").len(),
        3,
        "a verdict on the rule per share"
    );
    let ks = run.observation("kernel_stack")["kstack_kib"].as_f64().unwrap();
    assert!((4.0..=64.0).contains(&ks), "{ks}");
    if installed("node") {
        assert!(
            run.check("node_round_robin") && run.check("node_keepalive_one_worker")
        );
    }
}

#[test]
fn the_loops_wait_skipped_breaks_the_same_app() {
    let _t = turn();
    let run =
        run_removed("io-models", &["--quick", "--part", "models"], "skip_wait");
    run.assert_not_observed("same_app");
}

#[test]
fn a_wall_clock_burn_passes_the_cores() {
    let _t = turn();
    let run =
        run_removed("io-models", &["--quick", "--part", "cpu"], "wall_clock_burn");
    run.assert_not_observed("cpu_ceiling");
}

#[test]
fn a_loop_that_sleeps_through_the_wait_has_one_request_at_a_time() {
    let _t = turn();
    let run =
        run_removed("io-models", &["--quick", "--part", "waiting"], "loop_sleeps");
    run.assert_not_observed("timer_not_thread");
    let at_once = check(&run, "timer_not_thread")["at_once"].as_f64().unwrap();
    assert!(at_once < 1.0, "{at_once}");
}

#[test]
fn a_connection_cap_keeps_the_loop_from_holding_them_all() {
    let _t = turn();
    let args = ["--quick", "--part", "idle", "--worker-connections", "64"];
    let run = run_json("io-models", &args);
    run.assert_not_observed("loop_holds_idle");
    assert_eq!(check(&run, "loop_holds_idle")["held"], 64);
}

#[test]
fn short_keepalives_let_the_blocking_workers_reach_the_client() {
    let _t = turn();
    let args = [
        "--quick",
        "--part",
        "idle",
        "--idle",
        "10",
        "--keepalive-ms",
        "100",
        "--window-ms",
        "800",
    ];
    let run = run_json("io-models", &args);
    run.assert_not_observed("blocking_starve");
}

#[test]
fn big_buffers_make_a_loop_connection_cost_as_much_as_a_thread() {
    let _t = turn();
    let run =
        run_removed("io-models", &["--quick", "--part", "idle"], "loop_buffers");
    run.assert_not_observed("memory_per_connection");
}

#[test]
fn workers_that_burn_their_wait_hold_the_cores() {
    let _t = turn();
    let run =
        run_removed("io-models", &["--quick", "--part", "sweep"], "busy_wait");
    run.assert_not_observed("workers_sleep_through_waits");
}

#[test]
fn node_with_one_worker_has_no_round_robin() {
    if !installed("node") {
        eprintln!("node is not installed: skipped");
        return;
    }
    let _t = turn();
    let run =
        run_removed("io-models", &["--quick", "--part", "node"], "node_one_worker");
    run.assert_not_observed("node_round_robin");
    let run =
        run_removed("io-models", &["--quick", "--part", "node"], "node_close_each");
    run.assert_not_observed("node_keepalive_one_worker");
}

#[test]
fn without_node_and_wrk_those_parts_are_skipped_with_a_note() {
    let _t = turn();
    let env = [("PATH", "/nonexistent")];
    let run =
        run_json_env("io-models", &["--quick", "--part", "models,node,wrk"], &env);
    run.assert_verified();
    assert_eq!(run.observation("node")["installed"], false);
    assert_eq!(run.observation("wrk")["installed"], false);
    assert!(run.events.iter().all(|e| e["name"] != "node_round_robin"));
}

#[test]
fn bad_input_exits_2_before_anything_starts() {
    assert_usage_error("io-models", &["--idle", "5"]);
    assert_usage_error("io-models", &["--window-ms", "50"]);
    assert_usage_error("io-models", &["--part", "nope"]);
    assert_usage_error("io-models", &["--workers", "0"]);
    assert_usage_error("io-models", &["--serve", "fibers"]);
}

#[test]
fn ctrl_c_and_sigkill_leave_no_server_behind() {
    let _t = turn();
    let mut s = start_json("io-models", &["--quick", "--part", "cpu,idle"]);
    s.wait_for(|e| e["kind"] == "load_cpu").expect("load 1 ran");
    interrupt_dies_of(s, libc::SIGINT);
    // SIGKILL while a thread-per-connection server and the loop hold 1000 connections.
    let mut s = start_json("io-models", &["--quick", "--part", "idle"]);
    s.wait_for(|e| e["kind"] == "holding").expect("holding");
    sigkill_leaves_nothing(s);
}

#[test]
fn serve_runs_one_model_by_hand_until_sigterm() {
    let _t = turn();
    for model in ["prefork", "loops"] {
        let tag = new_tag("io-models");
        let mut child = Command::new(bin("io-models"))
            .args([
                "--serve",
                model,
                "--port",
                "0",
                "--cpu-ms",
                "1",
                "--wait-ms",
                "2",
            ])
            .env(TAG_VAR, &tag)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start --serve");
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).expect("its listening line");
        let port: u16 = line
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.ends_with(": cpu 1 ms, wait 2 ms\n"), "{answer}");
        // SAFETY: kill has no memory-safety preconditions; the pid is our child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
        assert_no_leftovers(&tag, Duration::from_secs(5));
    }
}
