mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn every_child_is_reaped_with_the_status_it_was_given() {
    let run = run_json("fork", &["--children", "6"]);
    run.assert_verified();
    let forked: Vec<i64> = run.observation("forked")["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_i64().unwrap())
        .collect();
    assert_eq!(forked.len(), 6);
    let reaped = run.observations("reaped");
    assert_eq!(reaped.len(), 6, "one reaped observation per child");
    let mut pids: Vec<i64> =
        reaped.iter().map(|r| r["pid"].as_i64().unwrap()).collect();
    pids.sort();
    let mut want = forked.clone();
    want.sort();
    assert_eq!(pids, want, "exactly the forked pids were reaped");
    for r in &reaped {
        assert_eq!(r["status"], r["expected"], "{r}");
        assert_eq!(r["gone"], true, "{r}");
    }
    // Child 2 raises SIGKILL on itself, the last one is killed by the parent with SIGTERM.
    let signals: Vec<&str> =
        reaped.iter().filter_map(|r| r["status"]["signal"].as_str()).collect();
    assert_eq!(signals.len(), 2, "{signals:?}");
    assert!(signals.contains(&"SIGKILL") && signals.contains(&"SIGTERM"));
    // Every exit code is different: each child's own status came back, not a shared one.
    let mut codes: Vec<i64> =
        reaped.iter().filter_map(|r| r["status"]["exited"].as_i64()).collect();
    assert_eq!(codes.len(), 4);
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), 4);
}

#[test]
fn the_childs_write_is_invisible_to_the_parent() {
    let run = run_json("fork", &["--children", "1"]);
    run.assert_verified();
    let copy = run.observation("copy");
    assert_eq!(copy["child_value"], 99);
    assert_eq!(copy["parent_value"], 1);
    assert_eq!(copy["child_addr"], copy["parent_addr"], "same virtual address");
    assert_eq!(copy["status"]["exited"], 0);
    // Who ran first is reported, never checked: any answer is fine, but it must be there.
    let first = run.observations("first");
    assert_eq!(first.len(), 1);
    assert!(first[0]["first"] == "child" || first[0]["first"] == "parent");
    assert!(run.events.iter().all(|e| e["name"] != "child_first"));
}

#[test]
fn one_child_is_killed_by_the_parent() {
    let run = run_json("fork", &["--children", "1"]);
    run.assert_verified();
    let r = run.observation("reaped");
    assert_eq!(r["status"]["signal"], "SIGTERM");
    assert_eq!(r["status"]["core_dumped"], false);
}

#[test]
fn the_largest_allowed_family_is_reaped_in_full() {
    let run = run_json("fork", &["--children", "64"]);
    run.assert_verified();
    assert_eq!(run.observations("reaped").len(), 64);
    // Every fourth child raises SIGKILL, the last is killed with SIGTERM.
    let by_sigkill = run
        .observations("reaped")
        .iter()
        .filter(|r| r["status"]["signal"] == "SIGKILL")
        .count();
    assert_eq!(by_sigkill, 16);
}

#[test]
fn a_shared_page_is_not_a_copy_and_the_verdict_turns() {
    // One thing changed: the variable lives in a MAP_SHARED page, which fork shares.
    let run = run_removed("fork", &["--children", "1"], "shared_page");
    run.assert_not_observed("child_write_invisible");
    let copy = run.observation("copy");
    assert_eq!(copy["child_value"], 99);
    assert_eq!(copy["parent_value"], 99, "the parent sees the child's write");
    assert!(run.check("every_status_decoded"), "part 2 is untouched");
}

#[test]
fn without_statuses_the_verdict_turns() {
    // One thing changed: SIGCHLD is ignored, so the kernel reaps the children itself
    // and keeps no status: waitpid(-1) fails with ECHILD, an observation, not a crash.
    let run = run_removed("fork", &["--children", "4"], "sigchld_ignored");
    run.assert_not_observed("every_status_decoded");
    assert!(run.observations("reaped").is_empty());
}

#[test]
fn a_child_that_never_ends_is_an_observation_not_a_hang() {
    // One thing changed: the parent does not send SIGTERM, so the blocked child never
    // ends. The reap's deadline (5 s) ends the lab with exit 3.
    let start = Instant::now();
    let run = run_removed("fork", &["--children", "2"], "no_sigterm");
    run.assert_not_observed("every_status_decoded");
    assert!(start.elapsed() < Duration::from_secs(30), "{:?}", start.elapsed());
}

#[test]
fn sigint_in_the_middle_leaves_no_child() {
    let mut s = start_json("fork", &["--children", "8", "--linger-ms", "30000"]);
    s.wait_for(|v| v["event"] == "observation" && v["kind"] == "forked")
        .expect("children forked");
    interrupt_dies_of(s, libc::SIGINT);
}

#[test]
fn bad_flags_exit_2() {
    assert_usage_error("fork", &["--children", "0"]);
    assert_usage_error("fork", &["--children", "65"]);
    assert_usage_error("fork", &["--children", "many"]);
    assert_usage_error("fork", &["--linger-ms", "-1"]);
    assert_usage_error("fork", &["--linger-ms", "60001"]);
    assert_usage_error("fork", &["--linger", "10"]);
    assert_usage_error("fork", &["--no-such-flag"]);
}
