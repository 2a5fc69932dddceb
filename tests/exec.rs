mod common;
use common::*;

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
    assert!(after["exe"].is_string(), "{after}");
    // The exec'd program is still the lab's child: it is reaped by the lab, killed by SIGTERM.
    let reaped = run.observation("sleep_reaped");
    assert_eq!(reaped["pid"], before["pid"]);
    assert!(reaped["status"].as_str().unwrap().contains("SIGTERM"), "{reaped}");
}

#[test]
fn exec_failure_is_exit_127_with_the_errno() {
    let run = run_json("exec", &["--rounds", "1"]);
    let f = run.observation("exec_failure");
    assert_eq!(f["code"], 127, "{f}");
    assert_eq!(f["errno"], libc::ENOENT, "{f}");
    assert!(run.check("exec_failure_127"));
}

#[test]
fn cloexec_descriptor_is_gone_after_exec_and_the_plain_one_is_there() {
    let run = run_json("exec", &["--rounds", "1"]);
    let l = run.observation("fd_listing");
    let fds = l["fds"].as_array().unwrap();
    let kept = l["kept_fd"].as_i64().unwrap();
    let shut = l["shut_fd"].as_i64().unwrap();
    assert!(
        fds.iter().any(|e| e["fd"] == kept && e["target"] == "/dev/null"),
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
fn bad_flags_exit_2() {
    assert_usage_error("exec", &["--rounds", "0"]);
    assert_usage_error("exec", &["--rounds", "5001"]);
    assert_usage_error("exec", &["--rounds", "x"]);
    assert_usage_error("exec", &["--ballast", "4097"]);
    assert_usage_error("exec", &["--bogus"]);
}
