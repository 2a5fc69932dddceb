mod common;
use common::*;

/// Small settings: a few hundred milliseconds, the same phenomena.
const QUICK: &[&str] =
    &["--spawns", "30", "--idle", "6", "--rounds", "200", "--max-job", "16"];

#[test]
fn measures_both_ways_and_checks_the_robust_claims() {
    let run = run_json("threads-vs-processes", QUICK);
    run.assert_verified();
    for name in [
        "idle_workers_asleep",
        "thread_starts_faster",
        "process_costs_more_memory",
        "rss_overstates_processes",
        "handover_is_a_move",
        "compute_parts_add_up",
    ] {
        assert!(run.check(name), "{name}");
    }
    // One start-up figure each way, from the requested number of samples.
    let spawns = run.observations("spawn");
    assert_eq!(spawns.len(), 2);
    for s in &spawns {
        assert_eq!(s["n"], 30);
        assert!(s["median_ns"].as_u64().unwrap() > 0, "{s}");
    }
    // The comparison table has a row per kind of work, and a claims table says which held.
    let table = run.observation("comparison");
    assert_eq!(table["rows"].as_array().unwrap().len(), 6);
    let claims = run.observation("claims");
    let claims = claims["rows"].as_array().unwrap();
    assert_eq!(claims.len(), 8);
    for c in claims {
        let held = c[2].as_str().unwrap();
        assert!(held == "held here" || held == "NOT here", "{c}");
        assert!(c[3] == "check" || c[3] == "reported", "{c}");
    }
}

#[test]
fn idle_workers_are_seen_asleep_and_their_memory_read_from_smaps() {
    let run = run_json("threads-vs-processes", QUICK);
    let mem = run.observations("memory");
    assert_eq!(mem.len(), 2);
    let thread = mem.iter().find(|m| m["way"] == "thread").unwrap();
    let process = mem.iter().find(|m| m["way"] == "process").unwrap();
    assert_eq!(thread["asleep"], 6, "every idle thread was asleep in read(2)");
    assert_eq!(process["asleep"], 6, "every idle child was asleep in read(2)");
    assert_eq!(process["pids"].as_array().unwrap().len(), 6, "{process}");
    // Forked children share their parent's pages: RSS summed counts them once per child,
    // PSS divides them, so the RSS total is far above the PSS total.
    let (rss, pss) = (
        process["rss_kib"].as_i64().unwrap(),
        process["pss_kib"].as_i64().unwrap(),
    );
    assert!(pss > 0 && rss > 2 * pss, "{process}");
    // Each process has its own page tables; threads share one set.
    assert!(process["pte_kib"].as_i64().unwrap() > 0, "{process}");
}

#[test]
fn limits_are_read_not_exhausted() {
    let run = run_json("threads-vs-processes", QUICK);
    let l = run.observation("limits");
    assert!(l["threads_max"].as_u64().unwrap() > 0);
    assert!(l["pid_max"].as_u64().unwrap() > 300);
    assert!(l["rlimit_nproc_soft"].as_u64().is_some());
    // Far from the limits: the lab never had more than a handful of tasks at once.
    assert!(l["tasks_now"].as_u64().unwrap() < l["threads_max"].as_u64().unwrap());
}

#[test]
fn compute_parts_add_up_and_the_sweep_is_reported() {
    let run = run_json("threads-vs-processes", QUICK);
    let sweep = run.observation("compute_sweep");
    let rows = sweep["rows"].as_array().unwrap();
    // 2^10, 2^12, 2^14, 2^16.
    assert_eq!(rows.len(), 4);
    let c = run.observation("compute");
    assert_eq!(c["size_exp"], 16);
    assert!(c["processes_ns"].as_u64().unwrap() > 0);
}

#[test]
fn the_thread_gets_the_bulk_data_at_the_address_it_was_sent_from() {
    let run = run_json("threads-vs-processes", QUICK);
    let bulk = run.observations("bulk");
    let thread = bulk.iter().find(|b| b["way"] == "thread").unwrap();
    assert_eq!(thread["same_address"], true, "{thread}");
}

#[test]
fn thread_workers_made_processes_turn_the_verdict() {
    // One thing changed: every "thread" worker (start-up, idle, hand-over) is a forked
    // process. Then nothing starts twice as fast, costs half the memory, or moves by pointer.
    let run = run_removed("threads-vs-processes", QUICK, "threads_are_processes");
    run.assert_not_observed("thread_starts_faster");
    run.assert_not_observed("process_costs_more_memory");
    run.assert_not_observed("handover_is_a_move");
}

#[test]
fn idle_children_asleep_in_poll_are_not_asleep_in_read() {
    // One thing changed: each idle child waits for the pipe's EOF in poll(2) before its
    // read. It sleeps (state S) all the same, but not in read(2), as the check claims.
    let run = run_removed("threads-vs-processes", QUICK, "idle_in_poll");
    run.assert_not_observed("idle_workers_asleep");
    let mem = run.observations("memory");
    let process = mem.iter().find(|m| m["way"] == "process").unwrap();
    assert_eq!(process["asleep"], 0, "{process}");
}

#[test]
fn a_hand_over_that_copies_turns_the_verdict() {
    // One thing changed: the thread is sent a copy of the 64 MiB (Vec::clone).
    let run = run_removed("threads-vs-processes", QUICK, "handover_copies");
    run.assert_not_observed("handover_is_a_move");
    assert!(run.check("thread_starts_faster"), "only the hand-over changed");
}

/// Two busy loops, one per CPU of a two-CPU machine, killed when dropped (also when the
/// test fails).
struct Hogs(Vec<std::process::Child>);

impl Hogs {
    fn start(n: usize) -> Hogs {
        Hogs(
            (0..n)
                .map(|_| {
                    std::process::Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .spawn()
                        .expect("start a busy loop")
                })
                .collect(),
        )
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        for h in &mut self.0 {
            let _ = h.kill();
            let _ = h.wait();
        }
    }
}

#[test]
fn a_busy_machine_does_not_turn_the_verdict() {
    // The audit saw "not observed" under two CPU hogs: every check must be judged so that
    // load, which only ever adds time, cannot invert it. Three runs under two busy loops.
    let _hogs = Hogs::start(2);
    for _ in 0..3 {
        let run = run_json("threads-vs-processes", QUICK);
        run.assert_verified();
    }
}

#[test]
fn sigint_in_the_middle_leaves_no_child() {
    let mut s = start_json(
        "threads-vs-processes",
        &["--idle", "100", "--rounds", "50000", "--max-job", "24"],
    );
    s.wait_for(|v| v["event"] == "observation" && v["kind"] == "memory")
        .expect("the idle threads were measured");
    interrupt_dies_of(s, libc::SIGINT);
}

#[test]
fn bad_flags_exit_2() {
    assert_usage_error("threads-vs-processes", &["--idle", "0"]);
    assert_usage_error("threads-vs-processes", &["--idle", "100000"]);
    assert_usage_error("threads-vs-processes", &["--spawns", "1"]);
    assert_usage_error("threads-vs-processes", &["--max-job", "40"]);
    assert_usage_error("threads-vs-processes", &["--rounds", "-1"]);
}
