mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Small zombie counts keep the runs short; part 7 is the same code at 10,000.
const QUICK: &[&str] = &["--zombies", "10,100"];

/// One verified run, shared by the tests that read its observations.
fn verified() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let run = run_json("pid1", QUICK);
        run.assert_verified();
        run
    })
}

fn removed(what: &str) -> Run {
    run_removed("pid1", QUICK, what)
}

/// The pid (outside) of part 4's PID 1: the lab's child that its orphans were given to.
fn pid1_pid(run: &Run) -> Value {
    let c = run
        .events
        .iter()
        .find(|e| e["event"] == "check" && e["name"] == "orphans_adopted_by_pid1")
        .expect("the check");
    c["pid"].clone()
}

fn i64s(v: &Value) -> Vec<i64> {
    v.as_array().expect("array").iter().filter_map(|x| x.as_i64()).collect()
}

#[test]
fn the_child_is_pid_1_inside_and_an_ordinary_pid_outside() {
    let o = verified().observation("pid1");
    assert_eq!(o["ns_pid"], 1, "{o}");
    assert_eq!(o["ns_ppid"], 0, "its parent is outside the namespace: {o}");
    assert_eq!(i64s(&o["nspid"]), vec![o["pid"].as_i64().unwrap(), 1], "{o}");
}

#[test]
fn without_a_new_namespace_the_child_is_no_pid_1_and_every_signal_verdict_turns() {
    let run = removed("no_newpid");
    for check in [
        "pid1_inside",
        "nspid_outside",
        "pid1_ignores_sigterm",
        "sigkill_inside_ignored",
        "sigkill_outside_kills_all",
    ] {
        run.assert_not_observed(check);
    }
    let o = run.observation("pid1");
    assert_ne!(o["ns_pid"], 1, "{o}");
}

#[test]
fn sigterm_and_sigint_do_nothing_to_a_pid_1_without_handlers() {
    let run = verified();
    let o = run.observation("pid1_after_signals");
    assert_eq!(o["alive"], true, "{o}");
    let bits = (1 << 14) | (1 << 1); // SIGTERM is 15, SIGINT 2
    assert_eq!(o["handled"].as_u64().unwrap() & bits, 0, "{o}");
    assert_eq!(o["ignored"].as_u64().unwrap() & bits, 0, "{o}");
    let ordinary: Vec<&Value> = run.observations("ordinary");
    let signals: Vec<&str> =
        ordinary.iter().map(|o| o["status"]["signal"].as_str().unwrap()).collect();
    assert_eq!(signals, ["SIGTERM", "SIGINT"], "the same program, not PID 1, dies");
    let sent: Vec<&str> =
        ordinary.iter().map(|o| o["sent"].as_str().unwrap()).collect();
    assert_eq!(sent, ["SIGTERM", "SIGINT"], "`sent` names the signal");
    let to_pid1: Vec<&Value> = run.observations("sent");
    assert!(to_pid1.iter().all(|o| o["sent"].is_string() && o["ok"] == true));
}

#[test]
fn the_same_program_in_a_namespace_of_its_own_does_not_die_and_the_verdict_turns() {
    let run = removed("ordinary_in_namespace");
    run.assert_not_observed("ordinary_dies");
    for o in run.observations("ordinary") {
        assert!(o["status"].is_null(), "still running at the deadline: {o}");
    }
}

#[test]
fn sigkill_from_inside_does_nothing_and_from_outside_ends_the_namespace() {
    let run = verified();
    let inside = run.observation("kill_inside");
    assert_eq!(
        (inside["ns_target"].as_i64(), inside["rc"].as_i64()),
        (Some(1), Some(0))
    );
    assert_eq!(inside["alive"], true, "{inside}");
    let outside = run.observation("kill_outside");
    assert_eq!(outside["status"]["signal"], "SIGKILL", "{outside}");
    assert_eq!(outside["sent"], "SIGKILL", "{outside}");
    assert_eq!(outside["ns_pids"].as_array().unwrap().len(), 3, "{outside}");
    assert_eq!(outside["sleepers"].as_array().unwrap().len(), 3, "{outside}");
    assert_eq!(outside["left"].as_array().unwrap().len(), 0, "{outside}");
}

#[test]
fn sigterm_from_outside_leaves_the_namespace_running_and_the_verdict_turns() {
    let run = removed("outside_sigterm");
    run.assert_not_observed("sigkill_outside_kills_all");
    let o = run.observation("kill_outside");
    assert!(o["status"].is_null(), "PID 1 was still running: {o}");
    assert_eq!(o["sent"], "SIGTERM", "{o}");
}

#[test]
fn orphans_are_adopted_by_pid_1_and_each_stays_a_zombie() {
    let run = verified();
    let orphans = run.observations("orphan");
    assert_eq!(orphans.len(), 3);
    let pid1 = run.observation("zombies");
    for o in &orphans {
        assert_eq!(o["ns_ppid"], 1, "getppid() inside: {o}");
        assert_ne!(o["ns_parent"], 1, "their first parent was not PID 1: {o}");
        assert_eq!(o["ppid"], pid1_pid(run), "outside: the namespace's PID 1: {o}");
    }
    let counts = i64s(&pid1["counts"]);
    assert_eq!(counts, vec![1, 2, 3, 4], "their parent, then one more per orphan");
}

#[test]
fn a_pid_1_that_reaps_keeps_no_zombie_and_the_verdict_turns() {
    let run = removed("reap_in_pid1");
    run.assert_not_observed("zombies_accumulate");
    assert_eq!(i64s(&run.observation("zombies")["counts"])[0], 0);
}

#[test]
fn orphans_whose_parent_stays_are_not_adopted_and_the_verdict_turns() {
    let run = removed("parent_stays");
    run.assert_not_observed("orphans_adopted_by_pid1");
    for o in run.observations("orphan") {
        assert_eq!(o["ns_ppid"], o["ns_parent"], "still their parent's: {o}");
    }
}

fn trial<'a>(run: &'a Run, init: &str) -> &'a Value {
    let rows = run.observations("init_row");
    let found =
        rows.into_iter().find(|o| o["init"].as_str().unwrap().starts_with(init));
    found.unwrap_or_else(|| panic!("no row for {init}:\n{}", run.stdout))
}

/// Reaped every orphan, SIGTERM ended the program (PID 1 exits 143), status 7 out.
fn does_an_inits_job(row: &Value) {
    assert_eq!(i64s(&row["ns_ppids"]), vec![1, 1, 1], "{row}");
    assert_eq!(row["zombies"], 0, "{row}");
    assert!(row["pid"].as_i64().is_some_and(|p| p > 1), "a pid outside: {row}");
    assert_eq!(row["sent"], "SIGTERM", "{row}");
    assert_eq!(row["status"]["exited"], 143, "{row}");
    assert_eq!(row["exit7"]["exited"], 7, "{row}");
}

#[test]
fn the_lab_s_init_reaps_forwards_and_passes_the_status_on() {
    let run = verified();
    does_an_inits_job(run.observation("init_trial"));
    does_an_inits_job(trial(run, "the lab's init"));
}

#[test]
fn without_an_init_the_program_as_pid_1_ignores_sigterm_and_keeps_zombies() {
    let row = trial(verified(), "none");
    assert_eq!(row["zombies"], 3, "{row}");
    assert!(row["status"].is_null() && row["answered"] == true, "{row}");
    assert_eq!(row["exit7"]["exited"], 7, "it is the program: {row}");
}

#[test]
fn tini_and_dumb_init_do_the_same_job_when_installed() {
    let run = verified();
    for tool in ["tini", "dumb-init"] {
        let missing =
            run.observations("init_missing").iter().any(|o| o["init"] == tool);
        if missing {
            eprintln!("note: {tool} is not installed (apt-get install -y {tool}): skipped");
            continue;
        }
        does_an_inits_job(trial(run, tool));
    }
}

#[test]
fn an_init_that_does_not_forward_leaves_the_program_running_and_the_verdict_turns()
{
    let run = removed("init_no_forward");
    run.assert_not_observed("init_forwards_sigterm");
    assert!(run.observation("init_trial")["status"].is_null());
}

#[test]
fn an_init_that_waits_only_for_the_program_keeps_zombies_and_the_verdict_turns() {
    let run = removed("init_no_reap");
    run.assert_not_observed("init_reaps_orphans");
    assert_eq!(run.observation("init_trial")["zombies"], 3);
}

#[test]
fn an_init_that_exits_0_loses_the_status_and_the_verdict_turns() {
    let run = removed("init_status_zero");
    run.assert_not_observed("init_passes_status");
    assert_eq!(run.observation("init_trial")["exit7"]["exited"], 0);
}

#[test]
fn each_step_of_part_7_holds_exactly_its_zombies() {
    let costs = verified().observations("zombie_cost");
    let pairs: Vec<(i64, i64)> = costs
        .iter()
        .map(|o| (o["n"].as_i64().unwrap(), o["seen"].as_i64().unwrap()))
        .collect();
    assert_eq!(pairs, [(10, 10), (100, 100), (0, 0)], "made, then reaped");
    let claim = verified().observation("seed_claim");
    assert_eq!(claim["n"], 100, "judged at the largest step: {claim}");
}

#[test]
fn a_maker_that_ignores_sigchld_holds_no_zombie_and_the_verdict_turns() {
    let run = run_removed("pid1", &["--zombies", "10"], "maker_reaps");
    run.assert_not_observed("zombies_held");
}

fn cgroup_is_gone(o: &Value) {
    let path = o["path"].as_str().expect("path");
    assert!(!Path::new(path).exists(), "{path} was left behind");
}

#[test]
fn fork_fails_with_eagain_at_pids_max_and_works_once_the_zombies_are_reaped() {
    let run = run_json("pid1", &["--zombies", "10", "--pids-max", "8"]);
    run.assert_verified();
    let o = run.observation("pids_limit");
    assert_eq!(o["errno"], libc::EAGAIN as i64, "{o}");
    assert_eq!(
        (o["made"].as_i64(), o["zombies"].as_i64()),
        (Some(7), Some(7)),
        "{o}"
    );
    assert_eq!(o["current"], 8, "the maker and its 7 zombies: {o}");
    // A count, named so that the picture does not read it as a pid.
    assert!(o["refused_forks"].as_i64().is_some_and(|n| n >= 1), "{o}");
    let after = run.observation("after_reap");
    assert_eq!(
        (after["fork_errno"].as_i64(), after["current"].as_i64()),
        (Some(0), Some(1))
    );
    cgroup_is_gone(o);
}

#[test]
fn without_a_limit_no_fork_fails_and_the_verdict_turns() {
    let run = removed("no_pids_limit");
    run.assert_not_observed("eagain_at_limit");
    let o = run.observation("pids_limit");
    assert_eq!(
        (o["errno"].as_i64(), o["made"].as_i64()),
        (Some(0), Some(32)),
        "{o}"
    );
    cgroup_is_gone(o);
}

#[test]
fn without_reaping_fork_fails_again_and_the_verdict_turns() {
    let run = removed("no_reap_before_retry");
    run.assert_not_observed("fork_after_reaping");
    assert_eq!(run.observation("after_reap")["fork_errno"], libc::EAGAIN as i64);
    cgroup_is_gone(run.observation("pids_limit"));
}

#[test]
fn a_panic_while_the_cgroup_is_full_removes_it() {
    let run = run_removed("pid1", &["--zombies", "10"], "panic_at_the_limit");
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.verdict()["outcome"], "could_not_run");
    cgroup_is_gone(run.observation("pids_limit"));
}

/// Start the lab, wait until part 8 holds its cgroup full; the cgroup's path.
fn start_at_the_limit() -> (Started, String) {
    let mut s = start_json("pid1", &["--zombies", "10", "--linger-ms", "30000"]);
    let o = s.wait_for(|v| v["kind"] == "pids_limit").expect("part 8 reached");
    let path = o["path"].as_str().unwrap().to_string();
    assert!(Path::new(&path).exists(), "{path} exists while the lab lingers");
    (s, path)
}

#[test]
fn sigint_and_sigterm_remove_the_cgroup() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let (s, path) = start_at_the_limit();
        interrupt_dies_of(s, sig);
        assert!(!Path::new(&path).exists(), "{path} left after signal {sig}");
    }
}

#[test]
fn after_a_sigkill_of_the_lab_its_janitor_removes_the_cgroup() {
    let (s, path) = start_at_the_limit();
    sigkill_leaves_nothing(s); // the namespace went with it (PDEATHSIG), the janitor ended
    assert!(!Path::new(&path).exists(), "{path} left after a SIGKILL of the lab");
}

#[test]
fn a_cgroup_left_by_a_dead_lab_is_removed_by_the_next_run() {
    // As if a lab and its janitor had both been SIGKILLed: a name whose lab is gone.
    let dir = "/sys/fs/cgroup/pids";
    // SAFETY: geteuid has no preconditions.
    if !Path::new(dir).is_dir() || unsafe { libc::geteuid() } != 0 {
        eprintln!("note: skipped: needs root and cgroup v1's {dir}");
        return;
    }
    let path = format!("{dir}/proclab-pid1-{}-1", i32::MAX); // no such pid
    std::fs::create_dir(&path).expect("mkdir a stale cgroup");
    let (code, out) = run_human("pid1", &["--zombies", "10"]);
    assert_eq!(code, Some(0), "{out}");
    // This run removed it, or another run of the suite started meanwhile did.
    assert!(!Path::new(&path).exists(), "{path} was not removed:\n{out}");
}

#[test]
fn sigkill_while_the_namespaces_are_full_leaves_nothing() {
    // In part 3 (sleepers), part 4 (zombies of PID 1) and part 7 (zombies).
    for section in [3, 4, 7] {
        let pred = |e: &Value| e["event"] == "section";
        sigkill_at("pid1", QUICK, section, pred, Duration::from_millis(100));
    }
}

/// Run the binary through `prefix` (setpriv, unshare...) with --json; as run_json.
fn run_via(prefix: &[&str], args: &[&str]) -> Option<Run> {
    let tag = new_tag("pid1");
    let out = Command::new(prefix[0])
        .args(&prefix[1..])
        .arg(bin("pid1"))
        .arg("--json")
        .args(args)
        .env(TAG_VAR, &tag)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let events =
        stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert_no_leftovers(&tag, Duration::from_secs(5));
    Some(Run { code: out.status.code(), events, stdout, stderr })
}

fn root_with(tool: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !root || !found {
        eprintln!(
            "note: skipped: needs root and {tool} to run the lab unprivileged"
        );
    }
    root && found
}

const NOBODY: &[&str] =
    &["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];

#[test]
fn as_nobody_it_makes_each_pid_namespace_inside_a_user_namespace() {
    if !root_with("setpriv") {
        return;
    }
    let args = ["--skip-cgroup", "--zombies", "10,100"];
    let run = run_via(NOBODY, &args).expect("setpriv runs");
    if run.code == Some(1) && run.stderr.contains("CLONE_NEWUSER") {
        eprintln!(
            "note: skipped: unprivileged user namespaces are refused here:\n{}",
            run.stderr
        );
        return;
    }
    run.assert_verified();
    assert_eq!(run.observation("pid1")["user_ns"], true);
    assert!(run
        .observations("skipped")
        .iter()
        .any(|o| o["section"].as_str().unwrap().starts_with("8.")));
}

#[test]
fn as_nobody_without_skip_cgroup_it_says_what_is_missing_before_forking() {
    if !root_with("setpriv") {
        return;
    }
    let run = run_via(NOBODY, &["--zombies", "10"]).expect("setpriv runs");
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("run as root, or pass --skip-cgroup"),
        "{}",
        run.stderr
    );
    assert_eq!(run.verdict()["outcome"], "could_not_run");
    assert!(
        run.events.iter().all(|e| e["event"] != "section"),
        "nothing ran: {}",
        run.stdout
    );
}

#[test]
fn with_no_user_namespace_left_it_says_exactly_what_is_missing() {
    if !root_with("unshare") {
        return;
    }
    // In a user namespace of its own whose limit of user namespaces is 0, with no
    // capability left: neither CLONE_NEWPID nor CLONE_NEWUSER can work.
    let script = "echo 0 > /proc/sys/user/max_user_namespaces && \
                  exec setpriv --bounding-set=-all --inh-caps=-all \"$@\"";
    let prefix = ["unshare", "--user", "--map-root-user", "sh", "-c", script, "sh"];
    let run = run_via(&prefix, &["--skip-cgroup"]).expect("unshare runs");
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    for words in [
        "CAP_SYS_ADMIN",
        "clone(CLONE_NEWPID) failed: EPERM",
        "max_user_namespaces is 0",
    ] {
        assert!(
            run.stderr.contains(words),
            "stderr names {words:?}:\n{}",
            run.stderr
        );
    }
    assert_eq!(run.verdict()["outcome"], "could_not_run");
}

#[test]
fn bad_flags_exit_2() {
    assert_usage_error("pid1", &["--orphans", "0"]);
    assert_usage_error("pid1", &["--zombies", "10,20000"]);
    assert_usage_error("pid1", &["--zombies", "0"]);
    assert_usage_error("pid1", &["--pids-max", "1"]);
    assert_usage_error("pid1", &["--linger-ms", "-1"]);
    assert_usage_error("pid1", &["--no-such-flag"]);
}
