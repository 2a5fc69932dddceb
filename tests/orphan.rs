mod common;
use common::*;

fn adopted<'a>(run: &'a Run, case: &str) -> &'a serde_json::Value {
    run.observations("adopted")
        .into_iter()
        .find(|o| o["case"] == case)
        .unwrap_or_else(|| panic!("no {case} adoption in:\n{}", run.stdout))
}

#[test]
fn plain_orphan_changes_parent_and_the_adopter_is_named() {
    let run = run_json("orphan", &["--linger-ms", "0"]);
    run.assert_verified();
    let before = &run.observations("before")[0];
    let a = adopted(&run, "plain");
    assert_eq!(
        a["old_ppid"], before["parent"],
        "the first parent was the lab's child"
    );
    assert_ne!(a["new_ppid"], a["old_ppid"], "getppid() changed");
    assert_eq!(a["ppid_from_proc"], a["new_ppid"], "/proc agrees with getppid()");
    assert!(!a["adopter_comm"].as_str().unwrap().is_empty(), "{a}");
    // The adopter is PID 1 or a subreaper above the lab, never the lab (not a subreaper yet).
    assert!(
        a["adopter_is_pid1"] == true || a["adopter_is_ancestor"] == true,
        "{a}"
    );
    assert_eq!(a["adopter_is_lab"], false);
    assert_eq!(run.observation("plain_end")["ended"], true);
}

#[test]
fn subreaper_adopts_and_reaps_the_orphan_every_time() {
    for _ in 0..3 {
        let run = run_json("orphan", &["--linger-ms", "0"]);
        run.assert_verified();
        let b = adopted(&run, "subreaper");
        assert_eq!(b["adopter_is_lab"], true, "{b}");
        let lab = run.observation("machine")["lab_pid"].clone();
        assert_eq!(b["new_ppid"], lab);
        assert_eq!(b["ppid_from_proc"], lab);
        let r = run.observation("subreaper_reaped");
        assert_eq!(r["orphan"], b["orphan"]);
        assert_eq!(
            r["code"], r["expected"],
            "the lab collected the orphan's own status"
        );
        assert_eq!(r["gone"], true);
    }
}

#[test]
fn skip_plain_runs_only_the_subreaper_case() {
    let run = run_json("orphan", &["--linger-ms", "0", "--skip-plain"]);
    run.assert_verified();
    assert!(run.observations("adopted").iter().all(|o| o["case"] == "subreaper"));
    assert_eq!(run.observations("adopted").len(), 1);
    assert!(run.observations("plain_end").is_empty());
}

#[test]
fn sigint_in_the_middle_leaves_nothing() {
    // --linger keeps the adopted orphan alive; interrupt while the subreaper lab owns it.
    let mut s = start_json("orphan", &["--linger-ms", "10000"]);
    s.wait_for(|v| v["event"] == "check" && v["name"] == "subreaper_adopted")
        .expect("orphan adopted by the lab");
    interrupt_dies_of(s, libc::SIGINT);
}

#[test]
fn a_parent_that_reaps_leaves_no_orphan_and_the_verdict_turns() {
    // One thing changed: the parent waits for its child before it exits. The child is never
    // re-parented, and the lab's waitpid for it fails with ECHILD: observations, exit 3.
    let run = run_removed("orphan", &["--linger-ms", "0"], "middle_reaps");
    run.assert_not_observed("plain_orphan_adopted");
    run.assert_not_observed("subreaper_adopted");
    run.assert_not_observed("subreaper_reaped");
    let b = adopted(&run, "subreaper");
    assert_eq!(b["new_ppid"], b["old_ppid"], "getppid() did not change: {b}");
    let r = run.observation("subreaper_reaped");
    assert_eq!(r["status"]["error"], "ECHILD", "{r}");
}

#[test]
fn a_sigkilled_lab_takes_its_lingering_orphans_along() {
    // The orphan would live 10 s more; its lifeline (a pipe from the lab) ends it at once.
    for (check, skip) in
        [("plain_orphan_adopted", ""), ("subreaper_adopted", "--skip-plain")]
    {
        let args = ["--linger-ms", "10000", skip];
        let reached = sigkill_at(
            "orphan",
            &args[..if skip.is_empty() { 2 } else { 3 }],
            1,
            |e| e["event"] == "check" && e["name"] == check,
            std::time::Duration::from_millis(100),
        );
        assert!(reached, "the run never reached {check}");
    }
}

#[test]
fn bad_flags_exit_2() {
    assert_usage_error("orphan", &["--linger-ms", "10001"]);
    assert_usage_error("orphan", &["--linger-ms", "-1"]);
    assert_usage_error("orphan", &["--linger", "100"]);
    assert_usage_error("orphan", &["--what"]);
}
