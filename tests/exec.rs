mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn the_pid_survives_exec_and_the_image_changes() {
    let run = run_json("exec", &["--rounds", "5"]);
    run.assert_verified();
    let images = run.observations("image");
    assert_eq!(images.len(), 2);
    let (before, after) = (images[0], images[1]);
    assert_eq!(before["phase"], "before");
    assert_eq!(after["phase"], "after");
    assert_eq!(before["pid"], after["pid"], "same pid before and after exec");
    assert_eq!(before["comm"], "exec");
    assert_eq!(after["comm"], "sleep");
    assert_ne!(before["exe"], after["exe"]);
    assert!(after["exec_error"].is_null(), "{after}");
    // The exec'd program is still the lab's child: it is reaped by the lab, killed by SIGTERM.
    let reaped = run.observation("sleep_reaped");
    assert_eq!(reaped["pid"], before["pid"]);
    assert_eq!(reaped["status"]["signal"], "SIGTERM", "{reaped}");
}

#[test]
fn exec_failure_is_exit_127_with_the_errno() {
    let run = run_json("exec", &["--rounds", "1"]);
    let f = run.observation("exec_failure");
    assert_eq!(f["status"]["exited"], 127, "{f}");
    assert_eq!(f["errno"], "ENOENT", "{f}");
    assert!(run.check("exec_failure_127"));
}

#[test]
fn cloexec_descriptor_is_gone_after_exec_and_the_plain_one_is_there() {
    let run = run_json("exec", &["--rounds", "1"]);
    let l = run.observation("fd_listing");
    let s = run.observation("fd_summary");
    let fds = l["fds"].as_array().unwrap();
    let kept = s["kept_fd"].as_i64().unwrap();
    let shut = s["shut_fd"].as_i64().unwrap();
    let file = s["kept_file"].as_str().unwrap();
    assert!(file.starts_with("pipe:["), "{s}");
    assert!(
        fds.iter().any(|e| e["fd"] == kept && e["target"] == file),
        "the descriptor without O_CLOEXEC is in the exec'd program's listing: {l}"
    );
    assert!(
        !fds.iter().any(|e| e["target"] == "/dev/zero"),
        "the O_CLOEXEC descriptor is not: {l}"
    );
    assert_ne!(kept, shut);
    // The listing came from the very process the lab forked (its own /proc/PID/fd).
    let own = format!("/proc/{}/fd", l["pid"]);
    assert!(fds.iter().any(|e| e["target"] == own.as_str()), "{l}");
    assert_eq!(l["status"]["exited"], 0);
    // Rust's std opens files close-on-exec.
    assert_eq!(run.observation("std_cloexec")["cloexec"], true);
}

#[test]
fn three_ways_to_start_a_program_are_timed() {
    let run = run_json("exec", &["--rounds", "3"]);
    run.assert_verified();
    let costs = run.observations("start_cost");
    assert_eq!(costs.len(), 3);
    for c in costs {
        assert_eq!(c["n"], 3);
        assert!(c["median_ns"].as_u64().unwrap() > 0);
    }
}

#[test]
fn ballast_still_verifies() {
    // With memory touched before part 4 the lab still runs every program; speed is not tested.
    let run = run_json("exec", &["--rounds", "2", "--ballast", "64"]);
    run.assert_verified();
    assert_eq!(run.observations("start_cost").len(), 3);
}

#[test]
fn a_child_that_neither_execs_nor_exits_is_an_observation_not_a_hang() {
    // One thing changed: the parent never releases the child, which waits before its
    // exec. The close-on-exec pipe stays open; its deadline (5 s) ends the lab, exit 3.
    let start = Instant::now();
    let run = run_removed("exec", &["--rounds", "1"], "never_exec");
    run.assert_not_observed("pid_kept_image_changed");
    assert!(start.elapsed() < Duration::from_secs(30), "{:?}", start.elapsed());
    assert!(run.observations("sleep_reaped").is_empty());
}

#[test]
fn the_same_program_again_is_not_a_new_image() {
    // One thing changed: the child execs the lab's own binary. Same pid, but comm and
    // exe do not change: the check must not take the closed pipe alone as proof.
    let run = run_removed("exec", &["--rounds", "1"], "same_program");
    run.assert_not_observed("pid_kept_image_changed");
    let after = run.observations("image")[1];
    assert_ne!(after["comm"], "sleep", "{after}");
}

#[test]
fn an_exec_that_succeeds_is_not_a_127() {
    // One thing changed: the program exists (`true`), so execvp does not return.
    let run = run_removed("exec", &["--rounds", "1"], "program_exists");
    run.assert_not_observed("exec_failure_127");
    let f = run.observation("exec_failure");
    assert!(f["errno"].is_null(), "{f}");
    assert_eq!(f["status"]["exited"], 0, "{f}");
}

#[test]
fn another_file_on_the_kept_number_does_not_pass_for_it() {
    // Another pipe dup2'd onto the kept descriptor's number before the fork: after exec
    // the number is there and is a pipe, but not the pipe the lab opened.
    let run = run_removed("exec", &["--rounds", "1"], "other_file_on_fd");
    run.assert_not_observed("cloexec_respected");
    let s = run.observation("fd_summary");
    assert_eq!(s["kept_seen"], false, "{s}");
    let l = run.observation("fd_listing");
    let on_number: Vec<_> = l["fds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["fd"] == s["kept_fd"])
        .collect();
    assert_eq!(on_number.len(), 1, "{l}");
    let target = on_number[0]["target"].as_str().unwrap();
    assert!(target.starts_with("pipe:[") && target != s["kept_file"], "{l}");
}

#[test]
fn a_descriptor_without_cloexec_leaks_and_the_verdict_turns() {
    // One thing changed: FD_CLOEXEC is cleared on /dev/zero before the fork.
    let run = run_removed("exec", &["--rounds", "1"], "no_cloexec");
    run.assert_not_observed("cloexec_respected");
    assert_eq!(run.observation("fd_summary")["shut_seen"], true);
}

#[test]
fn sigint_in_the_middle_leaves_no_child() {
    let mut s = start_json("exec", &["--rounds", "5000"]);
    s.wait_for(|v| {
        v["event"] == "section" && v["title"].as_str().unwrap().starts_with("4.")
    })
    .expect("timing started");
    std::thread::sleep(Duration::from_millis(300));
    interrupt_dies_of(s, libc::SIGINT);
}

#[test]
fn bad_flags_exit_2() {
    assert_usage_error("exec", &["--rounds", "0"]);
    assert_usage_error("exec", &["--rounds", "5001"]);
    assert_usage_error("exec", &["--rounds", "x"]);
    assert_usage_error("exec", &["--ballast", "4097"]);
    assert_usage_error("exec", &["--bogus"]);
}
