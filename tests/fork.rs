mod common;
use common::*;

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
    let mut signaled = 0;
    for r in &reaped {
        assert_eq!(r["code"], r["expected_code"], "{r}");
        assert_eq!(r["signal"], r["expected_signal"], "{r}");
        assert_eq!(r["gone"], true, "{r}");
        signaled += r["signal"].is_string() as usize;
    }
    // Child 2 raises SIGKILL on itself, the last one is killed by the parent with SIGTERM.
    assert!(reaped.iter().any(|r| r["signal"] == "SIGKILL"));
    assert!(reaped.iter().any(|r| r["signal"] == "SIGTERM"));
    assert!(reaped.iter().any(|r| r["code"].is_i64()));
    assert_eq!(signaled, 2);
    // Every exit code is different: each child's own status came back, not a shared one.
    let mut codes: Vec<i64> =
        reaped.iter().filter_map(|r| r["code"].as_i64()).collect();
    let n = codes.len();
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), n);
}

#[test]
fn the_childs_write_is_invisible_to_the_parent() {
    let run = run_json("fork", &["--children", "1"]);
    run.assert_verified();
    let copy = run.observation("copy");
    assert_eq!(copy["child_value"], 99);
    assert_eq!(copy["parent_value"], 1);
    assert_eq!(copy["child_addr"], copy["parent_addr"], "same virtual address");
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
    assert_eq!(r["signal"], "SIGTERM");
    assert!(r["code"].is_null());
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
        .filter(|r| r["signal"] == "SIGKILL")
        .count();
    assert_eq!(by_sigkill, 16);
}

#[test]
fn sigint_in_the_middle_leaves_no_child() {
    let mut s = start_json("fork", &["--children", "8", "--linger", "30000"]);
    s.wait_for(|v| v["event"] == "observation" && v["kind"] == "forked")
        .expect("children forked");
    interrupt_dies_of(s, libc::SIGINT);
}

#[test]
fn bad_flags_exit_2() {
    assert_usage_error("fork", &["--children", "0"]);
    assert_usage_error("fork", &["--children", "65"]);
    assert_usage_error("fork", &["--children", "many"]);
    assert_usage_error("fork", &["--linger", "-1"]);
    assert_usage_error("fork", &["--no-such-flag"]);
}
