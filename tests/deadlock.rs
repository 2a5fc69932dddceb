//! The deadlock lab: every deadlock is seen as a cycle (which locks, which holders), each
//! thread tied by the kernel to the mutex it waits for, broken within the deadline, and
//! every fix finishes from the state the deadlock starts from; each removal switch turns
//! its check; SIGINT / SIGTERM in the middle of a deadlock leave no process and no
//! /dev/shm entry; a worker refuses to run unless the lab started it; loom finds the
//! lock-order deadlock in the two-thread version and none in the ordered one.
mod common;
use common::*;
use serde_json::Value;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One lab run at a time: the tests check phenomena, and the machine has two cores.
static SERIAL: Mutex<()> = Mutex::new(());
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The edges of a cycle observation as (holder, holds, waits_for, held_by), sorted.
fn edges(o: &Value, who: &str) -> Vec<(String, String, String, String)> {
    let mut e: Vec<_> = o["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| (s(&e[who]), s(&e["holds"]), s(&e["waits_for"]), s(&e["held_by"])))
        .collect();
    e.sort();
    e
}

fn rows(run: &Run, kind: &str) -> Vec<Vec<String>> {
    run.observation(kind)["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r.as_array().expect("row").iter().map(s).collect())
        .collect()
}

fn edge(a: &str, b: &str, c: &str, d: &str) -> (String, String, String, String) {
    (a.into(), b.into(), c.into(), d.into())
}

/// The kernel's view of the cycle: each of `threads` asleep (S) in a futex wait whose
/// address lies in the mutex the wait-for graph says it waits for, held by its holder;
/// the tasks table shows the same address for it.
fn assert_futex_waits_close_the_cycle(run: &Run, threads: &[&str]) {
    let cycle = run.observation("cycle");
    let waits = run.observation("futex_waits")["waits"].as_array().expect("waits");
    let tasks = rows(run, "tasks");
    assert_eq!(waits.len(), threads.len(), "{waits:?}");
    for e in cycle["edges"].as_array().unwrap() {
        let w = waits.iter().find(|w| w["thread"] == e["thread"]).expect("a wait");
        assert_eq!(w["state"], "S", "{w}");
        assert_eq!(w["lock"], e["waits_for"], "{w} vs {e}");
        assert_eq!(w["held_by"], e["held_by"], "{w} vs {e}");
        let t = tasks.iter().find(|r| r[1] == s(&e["thread"])).expect("its task");
        assert_eq!((t[2].as_str(), &t[4]), ("S", &s(&w["futex"])), "{t:?}");
        assert!(t[3].contains("futex"), "{t:?}");
    }
}

#[test]
fn two_threads_deadlock_is_seen_broken_and_the_four_fixes_finish() {
    let _g = serial();
    let run = run_json("deadlock", &["--scenario", "threads", "--iters", "500"]);
    run.assert_verified();
    let cycle = run.observation("cycle");
    assert_eq!(
        edges(cycle, "thread"),
        vec![edge("t1", "A", "B", "t2"), edge("t2", "B", "A", "t1")],
        "t1 holds A and waits for B held by t2, and the other way round"
    );
    // parking_lot's detector, asked about the same ring on its own mutex, named both.
    let pl = run.observation("parking_lot");
    assert_eq!(pl["answered"], true, "{pl}");
    assert_eq!(pl["cycles"], 1);
    let mut names: Vec<String> =
        pl["threads"].as_array().unwrap().iter().map(|t| s(&t["thread"])).collect();
    names.sort();
    assert_eq!(names, ["t1", "t2"]);
    // From the kernel: each thread asleep on a futex inside the mutex it waits for.
    assert_futex_waits_close_the_cycle(&run, &["t1", "t2"]);
    let broken = run.observation("broken");
    assert_eq!(broken["status"]["signal"], "SIGKILL", "{broken}");
    assert!(broken["ended_after_ms"].as_u64().unwrap() <= 2000 + 1000, "{broken}");

    let fixes: Vec<&Value> = run.observations("fix");
    assert_eq!(fixes.len(), 5);
    let by = |role: &str| -> &Value {
        let f = fixes
            .iter()
            .find(|f| f["role"] == role)
            .unwrap_or_else(|| panic!("no fix {role}"));
        assert_eq!(f["finished"], true, "{f}");
        &f["report"]
    };
    for role in ["fix-order", "fix-jitter", "fix-timed", "fix-one-lock"] {
        let r = by(role);
        assert_eq!(
            (r["a"].as_u64(), r["b"].as_u64()),
            (Some(1000), Some(1000)),
            "{role}: {r}"
        );
    }
    // The livelock is a demonstration (forced by two barriers a round), so it is an
    // observation, not a check.
    let lockstep = run.observation("livelock");
    assert_eq!(lockstep["successes"], 0, "perfect lockstep never progresses");
    assert!(
        lockstep["retries"].as_u64().unwrap()
            >= 2 * lockstep["rounds"].as_u64().unwrap()
    );
    assert!(run.events.iter().all(|e| e["name"] != "livelock_in_lockstep"));
    by("fix-lockstep");
    assert!(
        by("fix-jitter")["retries"].as_u64().unwrap() >= 1,
        "the first round always collides"
    );
    assert!(
        by("fix-timed")["gave_up"].as_u64().unwrap() >= 1,
        "the timed lock gave up"
    );
}

#[test]
fn two_processes_with_flock_deadlock_and_fcntl_gets_edeadlk() {
    let _g = serial();
    let run = run_json("deadlock", &["--scenario", "processes"]);
    run.assert_verified();
    let cycle = run.observation("cycle");
    let e = edges(cycle, "pid");
    assert_eq!(e.len(), 2);
    let (p1, p2) = (&e[0].0, &e[1].0);
    assert_ne!(p1, p2);
    assert_eq!(&e[0].3, p2, "each waits for a lock the other holds: {e:?}");
    assert_eq!(&e[1].3, p1, "{e:?}");
    assert_eq!((e[0].1.as_str(), e[0].2.as_str()), ("lock-a", "lock-b"), "{e:?}");
    assert_eq!((e[1].1.as_str(), e[1].2.as_str()), ("lock-b", "lock-a"), "{e:?}");
    for st in cycle["states"].as_array().unwrap() {
        assert_eq!(st["state"], "S");
        assert!(s(&st["wchan"]).contains("lock"), "{st}");
    }
    let lines: Vec<String> =
        cycle["proc_locks"].as_array().unwrap().iter().map(s).collect();
    assert_eq!(lines.iter().filter(|l| l.contains("->")).count(), 2, "{lines:?}");
    assert!(lines.iter().all(|l| l.contains("FLOCK")), "{lines:?}");

    let b = run.observation("broken");
    assert_eq!(b["victim_status"]["signal"], "SIGKILL", "{b}");
    assert_eq!(b["survivor_status"]["exited"], 0, "{b}");

    let d = run.observation("edeadlk");
    assert_eq!(d["errno"], libc::EDEADLK, "{d}");
    assert_eq!(d["waiter_was_blocked"], true);
    assert_eq!(d["refused_status"]["exited"], libc::EDEADLK, "{d}");
    assert_eq!(d["waiter_status"]["exited"], 0, "{d}");
    let fix = run.observation("fix");
    assert_eq!(fix["finished"], true);
}

#[test]
fn two_processes_block_in_pipe_write_with_both_pipes_full() {
    let _g = serial();
    let run = run_json("deadlock", &["--scenario", "pipes"]);
    run.assert_verified();
    let o = run.observation("pipes_blocked");
    let cap = o["capacity"].as_u64().unwrap();
    assert!(cap >= 4096);
    assert!(
        o["message"].as_u64().unwrap() > cap,
        "each message is larger than a pipe holds"
    );
    for w in o["writers"].as_array().unwrap() {
        assert_eq!(w["state"], "S", "{w}");
        assert!(s(&w["wchan"]).contains("pipe_write"), "{w}");
        assert_eq!(
            w["queued_in_its_pipe"].as_u64(),
            Some(cap),
            "the pipe is full: {w}"
        );
    }
    let b = run.observation("broken");
    assert!(b["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .all(|st| st["signal"] == "SIGKILL"));
    let fix = run.observation("fix");
    assert_eq!(fix["finished"], true);
    assert_eq!(fix["bytes_each_way"].as_u64(), Some(2 * cap));
    assert!(fix["statuses"].as_array().unwrap().iter().all(|st| st["exited"] == 0));
}

#[test]
fn philosophers_form_a_ring_and_the_ordered_fix_eats_every_meal() {
    let _g = serial();
    let run = run_json(
        "deadlock",
        &["--scenario", "philosophers", "--philosophers", "4", "--iters", "100"],
    );
    run.assert_verified();
    let want: Vec<_> = (0..4)
        .map(|i| {
            let j = (i + 1) % 4;
            edge(
                &format!("phil{i}"),
                &format!("fork{i}"),
                &format!("fork{j}"),
                &format!("phil{j}"),
            )
        })
        .collect();
    assert_eq!(edges(run.observation("cycle"), "thread"), want);
    assert_futex_waits_close_the_cycle(&run, &["phil0", "phil1", "phil2", "phil3"]);
    assert_eq!(
        run.observation("parking_lot")["threads"].as_array().unwrap().len(),
        4
    );
    let fix = run.observation("fix");
    assert_eq!(fix["finished"], true);
    assert_eq!(fix["report"]["meals"], 400);
}

#[test]
fn all_scenarios_verify_and_end_in_bounded_time() {
    let _g = serial();
    let t0 = Instant::now();
    let run = run_json("deadlock", &["--iters", "200"]);
    let took = t0.elapsed();
    run.assert_verified();
    let table = rows(&run, "verdicts");
    assert_eq!(table.len(), 4);
    assert!(
        table.iter().all(|r| r[1] == "yes" && r[3] == "yes" && r[5] == "verified"),
        "{table:?}"
    );
    // Four deadlocks, each broken by the 2 s deadline at the latest, plus the fixes.
    assert!(took < Duration::from_secs(4 * 3 + 10), "took {took:?}");
}

#[test]
fn sigint_in_the_middle_of_a_file_lock_deadlock_leaves_nothing() {
    let _g = serial();
    let mut st =
        start_json("deadlock", &["--scenario", "processes", "--hold-ms", "30000"]);
    let held = st.wait_for(|v| v["kind"] == "holding").expect("deadlock held");
    assert!(held["pid"].as_i64().unwrap() > 0);
    let pid = st.child.id();
    let ours = shm_entries()
        .into_iter()
        .filter(|n| n.contains(&format!("-{pid}-")))
        .count();
    assert_eq!(ours, 2, "both lock files exist in /dev/shm during the deadlock");
    interrupt_dies_of(st, libc::SIGINT);
}

#[test]
fn sigterm_in_the_middle_of_a_thread_deadlock_leaves_nothing() {
    let _g = serial();
    let mut st =
        start_json("deadlock", &["--scenario", "threads", "--hold-ms", "30000"]);
    let held = st.wait_for(|v| v["kind"] == "holding").expect("deadlock held");
    let worker = held["pid"].as_i64().unwrap() as i32;
    assert!(std::path::Path::new(&format!("/proc/{worker}")).exists());
    interrupt_dies_of(st, libc::SIGTERM);
    assert!(!std::path::Path::new(&format!("/proc/{worker}")).exists());
}

#[test]
fn sigterm_in_the_middle_of_a_pipe_deadlock_leaves_nothing() {
    let _g = serial();
    let mut st =
        start_json("deadlock", &["--scenario", "pipes", "--hold-ms", "30000"]);
    st.wait_for(|v| v["kind"] == "holding").expect("deadlock held");
    interrupt_dies_of(st, libc::SIGTERM);
}

#[test]
fn sigkill_of_the_lab_still_takes_the_deadlocked_worker_down() {
    // SIGKILL runs no handler: the worker dies through PR_SET_PDEATHSIG instead.
    let _g = serial();
    let mut st =
        start_json("deadlock", &["--scenario", "threads", "--hold-ms", "30000"]);
    let held = st.wait_for(|v| v["kind"] == "holding").expect("deadlock held");
    let worker = held["pid"].as_i64().unwrap() as i32;
    interrupt_dies_of(st, libc::SIGKILL);
    // The worker may still be on its way out (its memory already gone): wait, bounded.
    let deadline = Instant::now() + Duration::from_secs(5);
    let dead = |st: &str| st.is_empty() || st.contains(") Z") || st.contains(") X");
    let mut state = String::new();
    while Instant::now() < deadline {
        state = std::fs::read_to_string(format!("/proc/{worker}/stat"))
            .unwrap_or_default();
        if dead(&state) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(dead(&state), "worker {worker} still alive: {state}");
}

#[test]
fn a_short_deadline_still_ends_in_time_and_leaves_nothing() {
    let _g = serial();
    let run = run_json(
        "deadlock",
        &["--scenario", "threads", "--deadline-ms", "150", "--iters", "100"],
    );
    // The wait-for graph usually sees the cycle within 150 ms; parking_lot's slower answer
    // may be cut off by the watchdog. Either way the lab ends and says which.
    assert!(matches!(run.code, Some(0) | Some(3)), "{}", run.stderr);
    let b = run.observation("broken");
    assert!(b["ended_after_ms"].as_u64().unwrap() <= 150 + 1000, "{b}");
    assert_eq!(b["status"]["signal"], "SIGKILL", "{b}");
    // A parking_lot that had not answered in time is a failed check, never agreement.
    let pl = run.observation("parking_lot");
    assert_eq!(
        run.check("threads_parking_lot_agrees"),
        pl["answered"] == true,
        "{pl}"
    );
}

#[test]
fn the_human_output_names_roles_not_their_debug_form() {
    let _g = serial();
    let (code, out) =
        run_human("deadlock", &["--scenario", "threads", "--iters", "50"]);
    assert_eq!(code, Some(0), "{out}");
    for debug in ["FixOrder", "FixJitter", "FixTimed", "FixOneLock", "(Pair)"] {
        assert!(!out.contains(debug), "{debug} in:\n{out}");
    }
}

/// Run `deadlock` with `args` and `env`; it must exit 2 within 5 s (a worker role that
/// ran would deadlock for ever: it is killed, and the test fails).
fn refused(args: &[&str], env: &[(&str, &str)]) {
    let mut child = Command::new(bin("deadlock"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start deadlock");
    let end = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("deadlock {args:?} ran as a worker: no lab watches it");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(2), "deadlock {args:?}");
}

#[test]
fn a_worker_role_refuses_to_run_unless_its_lab_started_it() {
    refused(&["--role", "pair"], &[]);
    refused(&["--role", "philosophers-parking-lot"], &[]);
    refused(&["--role", "fix-order"], &[]);
    // The variable must name the worker's parent (the test here, not pid 1).
    refused(&["--role", "pair"], &[("PROCLAB_DEADLOCK_LAB", "1")]);
}

#[test]
fn bad_flags_exit_2() {
    assert_usage_error("deadlock", &["--deadline-ms", "0"]);
    assert_usage_error("deadlock", &["--deadline-ms", "99"]);
    assert_usage_error("deadlock", &["--deadline-ms", "600000"]);
    assert_usage_error("deadlock", &["--deadline", "2000"]);
    assert_usage_error("deadlock", &["--hold", "10"]);
    assert_usage_error("deadlock", &["--philosophers", "1"]);
    assert_usage_error("deadlock", &["--philosophers", "1000"]);
    assert_usage_error("deadlock", &["--iters", "0"]);
    assert_usage_error("deadlock", &["--hold-ms", "-1"]);
    assert_usage_error("deadlock", &["--hold-ms", "600001"]);
    assert_usage_error("deadlock", &["--scenario", "nope"]);
}

// ---- The phenomenon removed (one thing changed in the lab's code): exit 3, check named. ----

#[test]
fn threads_in_the_same_order_form_no_cycle_and_the_verdict_turns() {
    let _g = serial();
    // Both threads take A before B: t2 waits for A before the barrier, no cycle of locks.
    let args = ["--scenario", "threads", "--deadline-ms", "400", "--iters", "50"];
    let run = run_removed("deadlock", &args, "same_order");
    run.assert_not_observed("threads_cycle_seen");
    assert!(run.observations("cycle").is_empty(), "no cycle to show");
}

#[test]
fn threads_that_park_instead_of_locking_are_not_a_deadlock() {
    let _g = serial();
    // The audit's change: each thread sleeps (thread::park, also a futex wait) where it
    // would ask for its second lock. The worker's own graph still "closes".
    let args = ["--scenario", "threads", "--deadline-ms", "600", "--iters", "50"];
    let run = run_removed("deadlock", &args, "park_instead_of_lock");
    run.assert_not_observed("threads_cycle_seen");
    run.assert_not_observed("threads_parking_lot_agrees");
    assert_eq!(run.observation("cycle")["edges"].as_array().unwrap().len(), 2);
    for w in run.observation("futex_waits")["waits"].as_array().unwrap() {
        assert!(w["futex"].is_string(), "asleep on a futex all the same: {w}");
        assert!(w["lock"].is_null(), "but on no mutex of the ring: {w}");
    }
    let pl = run.observation("parking_lot");
    assert_eq!(pl["answered"], false, "{pl}");
    assert!(pl["no_deadlock"].as_u64().unwrap() >= 1, "it said no deadlock: {pl}");
}

#[test]
fn philosophers_that_park_instead_of_locking_are_not_a_deadlock() {
    let _g = serial();
    let args =
        ["--scenario", "philosophers", "--deadline-ms", "600", "--iters", "50"];
    let run = run_removed("deadlock", &args, "park_instead_of_lock");
    run.assert_not_observed("philosophers_cycle_seen");
    run.assert_not_observed("philosophers_parking_lot_agrees");
}

/// The threads scenario with the fix of `role` taken away by `switch`: that fix runs
/// into the certain deadlock, is killed at the deadline, and `check` fails.
fn fix_removed(switch: &str, role: &str, check: &str) {
    let _g = serial();
    let args = ["--scenario", "threads", "--deadline-ms", "1500", "--iters", "100"];
    let run = run_removed("deadlock", &args, switch);
    run.assert_not_observed(check);
    let fix = run.observations("fix").into_iter().find(|f| f["role"] == role);
    let fix = fix.unwrap_or_else(|| panic!("no fix {role}"));
    assert_eq!(
        (fix["finished"].as_bool(), fix["watchdog_fired"].as_bool()),
        (Some(false), Some(true)),
        "{fix}"
    );
    assert_eq!(fix["status"]["signal"], "SIGKILL", "{fix}");
}

#[test]
fn the_order_fix_taken_away_deadlocks_for_certain() {
    fix_removed("opposite_orders", "fix-order", "fix_order_finished");
}

#[test]
fn the_try_lock_fix_taken_away_deadlocks_for_certain() {
    fix_removed("lock_instead_of_try_lock", "fix-jitter", "fix_trylock_finished");
}

#[test]
fn the_timed_lock_fix_taken_away_deadlocks_for_certain() {
    fix_removed("lock_without_timeout", "fix-timed", "fix_timed_finished");
}

#[test]
fn the_one_lock_fix_taken_away_deadlocks_for_certain() {
    fix_removed(
        "two_locks_instead_of_one",
        "fix-one-lock",
        "fix_one_lock_finished",
    );
}

#[test]
fn the_philosophers_fix_taken_away_deadlocks_for_certain() {
    let _g = serial();
    let args =
        ["--scenario", "philosophers", "--deadline-ms", "1500", "--iters", "50"];
    let run = run_removed("deadlock", &args, "left_fork_first");
    run.assert_not_observed("philosophers_fix_finished");
    let fix = run.observation("fix");
    assert_eq!(fix["role"], "fix-philosophers");
    assert_eq!(fix["watchdog_fired"], true, "{fix}");
    assert!(run.check("philosophers_cycle_seen"), "only the fix was taken away");
}

#[test]
fn philosophers_in_the_same_order_form_no_ring_and_the_verdict_turns() {
    let _g = serial();
    let args =
        ["--scenario", "philosophers", "--deadline-ms", "400", "--iters", "50"];
    let run = run_removed("deadlock", &args, "same_order");
    run.assert_not_observed("philosophers_cycle_seen");
}

#[test]
fn file_locks_in_the_same_order_form_no_cycle_and_the_verdict_turns() {
    let _g = serial();
    let args = ["--scenario", "processes", "--deadline-ms", "300"];
    let run = run_removed("deadlock", &args, "same_file_order");
    run.assert_not_observed("processes_cycle_seen");
    run.assert_not_observed("fcntl_edeadlk");
}

#[test]
fn messages_that_fit_in_the_pipe_block_nobody_and_the_verdict_turns() {
    let _g = serial();
    let args = ["--scenario", "pipes", "--deadline-ms", "300"];
    let run = run_removed("deadlock", &args, "small_pipe_message");
    run.assert_not_observed("pipes_blocked");
}

// ---- Model checking with loom: every interleaving of the two-thread version. ----

/// Two threads and two loom mutexes; the spawned thread takes A then B, the main thread
/// takes A then B (`ordered`) or B then A.
fn two_threads(ordered: bool) {
    use loom::sync::{Arc, Mutex};
    let a = Arc::new(Mutex::new(0u32));
    let b = Arc::new(Mutex::new(0u32));
    let (a2, b2) = (a.clone(), b.clone());
    let t = loom::thread::spawn(move || {
        let mut ga = a2.lock().unwrap();
        let mut gb = b2.lock().unwrap();
        *ga += 1;
        *gb += 1;
    });
    if ordered {
        let mut ga = a.lock().unwrap();
        let mut gb = b.lock().unwrap();
        *ga += 1;
        *gb += 1;
    } else {
        let mut gb = b.lock().unwrap();
        let mut ga = a.lock().unwrap();
        *ga += 1;
        *gb += 1;
    }
    t.join().unwrap();
    assert_eq!((*a.lock().unwrap(), *b.lock().unwrap()), (2, 2));
}

#[test]
fn loom_finds_no_deadlock_with_a_global_order() {
    loom::model(|| two_threads(true));
}

#[test]
fn loom_finds_the_lock_order_deadlock() {
    // loom stops the whole process when it finds a deadlock, so the model runs in a child:
    // this same test binary, running only the ignored test below.
    let out = Command::new(std::env::current_exe().expect("current_exe"))
        .args([
            "loom_opposite_order_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("DEADLOCK_LOOM_CHILD", "1")
        .output()
        .expect("run the loom child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "loom found no deadlock:\n{stdout}\n{stderr}");
    let verdict = stderr
        .lines()
        .find(|l| l.starts_with("deadlock; threads ="))
        .unwrap_or_else(|| panic!("the child failed, but not because loom found a deadlock:\n{stdout}\n{stderr}"));
    assert_eq!(
        verdict.matches("Blocked").count(),
        2,
        "both threads blocked: {verdict}"
    );
    // The panic happens inside loom's scheduler, which then aborts the process.
    assert!(
        out.status.signal() == Some(libc::SIGABRT)
            || out.status.code() == Some(101),
        "{:?}",
        out.status
    );
}

#[test]
#[ignore = "run as a child process by loom_finds_the_lock_order_deadlock"]
fn loom_opposite_order_child() {
    if std::env::var_os("DEADLOCK_LOOM_CHILD").is_none() {
        return; // only meaningful as the child of the test above
    }
    loom::model(|| two_threads(false));
}
