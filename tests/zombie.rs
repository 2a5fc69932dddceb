mod common;
use common::*;

#[test]
fn zombie_is_z_until_reaped_and_gone_after() {
    let run = run_json("zombie", &["--linger-ms", "0", "--count", "2"]);
    run.assert_verified();
    let unreaped: Vec<_> = run
        .observations("state")
        .into_iter()
        .filter(|o| o["phase"] == "unreaped")
        .collect();
    assert_eq!(unreaped.len(), 2);
    for o in &unreaped {
        assert_eq!(o["state"], "Z", "{o}");
    }
    let reaped = run.observations("reaped");
    assert_eq!(reaped.len(), 2);
    for r in reaped {
        assert_eq!(r["gone"], true);
        assert_eq!(
            r["status"]["exited"], r["expected"],
            "the child's status came back through waitpid"
        );
    }
    // The zombies appear in the lab's own process tree as children of the lab.
    let tree = run.observation("tree");
    let zombies = tree["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] == "Z")
        .count();
    assert_eq!(zombies, 2);
}

#[test]
fn sigkill_leaves_the_zombie_in_place() {
    let run = run_json("zombie", &["--linger-ms", "0", "--count", "1"]);
    let after = run
        .observations("state")
        .into_iter()
        .find(|o| o["phase"] == "after_sigkill")
        .cloned()
        .expect("after_sigkill");
    assert_eq!(after["state"], "Z");
    assert!(run.check("sigkill_no_effect"));
}

#[test]
fn sigchld_ignored_means_no_zombie_and_echild() {
    let run = run_json("zombie", &["--linger-ms", "0", "--count", "1"]);
    let o = run.observation("sig_ign");
    assert!(!o["states_seen"].as_str().unwrap().contains('Z'), "{o}");
    assert_eq!(o["gone"], true);
    assert_eq!(o["wait"]["error"], "ECHILD");
}

#[test]
fn children_reaped_at_once_leave_no_zombie_and_the_verdict_turns() {
    // One thing changed: the parent reaps before it looks. No Z, and kill finds no process
    // (ESRCH): an observation that ends the lab "not observed", never a crash.
    let run =
        run_removed("zombie", &["--linger-ms", "0", "--count", "2"], "reap_first");
    run.assert_not_observed("zombie_seen");
    run.assert_not_observed("sigkill_no_effect");
}

#[test]
fn children_that_never_exit_turn_the_verdict_within_the_deadline() {
    // The children sleep instead of exiting: none is a zombie, SIGKILL kills the first
    // (it is Z afterwards, but was not before), and section 3 must not wait forever.
    let started = std::time::Instant::now();
    let run = run_removed(
        "zombie",
        &["--linger-ms", "0", "--count", "2"],
        "children_linger",
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "bounded");
    run.assert_not_observed("zombie_seen");
    run.assert_not_observed("sigkill_no_effect");
    run.assert_not_observed("reaped_gone");
    let c = run
        .events
        .iter()
        .find(|e| e["event"] == "check" && e["name"] == "sigkill_no_effect")
        .expect("check");
    assert_ne!(c["was"], "Z", "the victim was not a zombie before the kill: {c}");
    let late: Vec<_> = run
        .observations("reaped")
        .into_iter()
        .filter(|r| r["in_time"] == false)
        .collect();
    assert_eq!(late.len(), 1, "the second child was killed at the deadline");
}

#[test]
fn sigint_in_the_middle_leaves_no_child() {
    // --linger-ms keeps the zombies unreaped long enough to interrupt the lab while it owns them.
    let mut s = start_json("zombie", &["--linger-ms", "30000", "--count", "3"]);
    s.wait_for(|v| v["event"] == "check" && v["name"] == "zombie_seen")
        .expect("zombies made");
    interrupt_dies_of(s, libc::SIGINT);
}

#[test]
fn bad_flags_exit_2() {
    assert_usage_error("zombie", &["--count", "0"]);
    assert_usage_error("zombie", &["--count", "100000"]);
    assert_usage_error("zombie", &["--linger-ms", "-5"]);
    assert_usage_error("zombie", &["--no-such-flag"]);
}
