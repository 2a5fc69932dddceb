mod common;
use common::*;
use serde_json::Value;
use std::time::Duration;

/// The fates of `role` in `scenario`.
fn fates<'a>(run: &'a Run, scenario: &str, role: &str) -> Vec<&'a Value> {
    run.observations("fate")
        .into_iter()
        .filter(|o| o["scenario"] == scenario && o["role"] == role)
        .collect()
}

/// The signal that killed the parent of `scenario`, as its wait status says.
fn parent_signal(run: &Run, scenario: &str) -> String {
    let p = run
        .observations("parent_death")
        .into_iter()
        .find(|o| o["scenario"] == scenario)
        .unwrap_or_else(|| {
            panic!("no parent_death for {scenario}:\n{}", run.stdout)
        });
    p["status"]["signal"].as_str().unwrap_or("none").to_string()
}

#[test]
fn plain_fork_children_survive_as_orphans_of_the_subreaper() {
    let run = run_json(
        "parent-death",
        &["--scenario", "plain", "--children", "3", "--linger-ms", "50"],
    );
    run.assert_verified();
    assert_eq!(run.observation("subreaper")["subreaper"], true);
    assert_eq!(parent_signal(&run, "plain"), "SIGKILL");
    // Before the kill: the children's ppid is the parent's pid (family table: role, pid, ppid, ...).
    let family = run.observation("family");
    let rows = family["rows"].as_array().unwrap();
    let parent_pid = rows.iter().find(|r| r[0] == "parent").unwrap()[1]
        .as_str()
        .unwrap()
        .to_string();
    let before: Vec<&Value> = rows.iter().filter(|r| r[0] == "child").collect();
    assert_eq!(before.len(), 3);
    assert!(
        before.iter().all(|r| r[2].as_str() == Some(parent_pid.as_str())),
        "{family}"
    );
    let kids = fates(&run, "plain", "child");
    assert_eq!(kids.len(), 3);
    for k in &kids {
        assert_eq!(
            k["parent"].as_i64().map(|p| p.to_string()),
            Some(parent_pid.clone())
        );
        // Alive after the parent was reaped, with a new ppid: the observer's.
        assert_eq!(k["fate"]["alive"], true, "{k}");
        assert_ne!(k["fate"]["ppid"], k["parent"], "{k}");
        assert_eq!(k["fate"]["ppid"], k["observer"], "{k}");
    }
    // Then the observer ended them itself: killed by its SIGTERM.
    let cleaned = run.observations("cleaned");
    assert_eq!(cleaned.len(), 3);
    assert!(cleaned.iter().all(|c| c["fate"]["status"]["signal"] == "SIGTERM"));
}

#[test]
fn pdeathsig_children_are_killed_by_sigterm_and_the_late_one_catches_the_race() {
    let run = run_json(
        "parent-death",
        &["--scenario", "pdeathsig", "--children", "4", "--linger-ms", "0"],
    );
    run.assert_verified();
    assert_eq!(parent_signal(&run, "pdeathsig"), "SIGKILL");
    let kids = fates(&run, "pdeathsig", "child");
    assert_eq!(kids.len(), 4);
    for k in &kids {
        assert_eq!(k["fate"]["alive"], false, "{k}");
        assert_eq!(k["fate"]["status"]["signal"], "SIGTERM", "{k}");
    }
    // The child whose prctl came after the parent died got no signal: its getppid re-check
    // made it exit with the lab's PARENT_GONE status (4).
    let late = fates(&run, "pdeathsig", "late child");
    assert_eq!(late.len(), 1);
    assert_eq!(late[0]["fate"]["status"]["exited"], 4, "{}", late[0]);
}

#[test]
fn group_signal_kills_the_members_but_not_a_child_that_left_the_group() {
    let run =
        run_json("parent-death", &["--scenario", "pgroup", "--linger-ms", "50"]);
    run.assert_verified();
    assert_eq!(parent_signal(&run, "pgroup"), "SIGTERM");
    let kids = fates(&run, "pgroup", "child");
    assert_eq!(kids.len(), 3);
    assert!(
        kids.iter().all(|k| k["fate"]["status"]["signal"] == "SIGTERM"),
        "{kids:?}"
    );
    // Before the kill: the parent leads the group the children share (pgrp column).
    let family = run.observation("family");
    let rows = family["rows"].as_array().unwrap();
    let parent = rows.iter().find(|r| r[0] == "parent").unwrap();
    assert_eq!(parent[3], parent[1], "the parent leads its group: {family}");
    for r in rows.iter().filter(|r| r[0] == "child") {
        assert_eq!(r[3], parent[1], "a child is in the parent's group: {family}");
    }
    let leaver = fates(&run, "pgroup", "leaver");
    assert_eq!(leaver.len(), 1);
    let l = leaver[0];
    assert_eq!(l["fate"]["alive"], true, "{l}");
    assert_eq!(l["fate"]["ppid"], l["observer"], "{l}");
    assert_eq!(
        l["fate"]["pgrp"], l["pid"],
        "the leaver leads a group of its own: {l}"
    );
}

#[test]
fn pipe_children_exit_zero_on_eof() {
    let run = run_json(
        "parent-death",
        &["--scenario", "pipe", "--children", "2", "--linger-ms", "0"],
    );
    run.assert_verified();
    assert_eq!(parent_signal(&run, "pipe"), "SIGKILL");
    let kids = fates(&run, "pipe", "child");
    assert_eq!(kids.len(), 2);
    for k in &kids {
        assert_eq!(k["fate"]["status"]["exited"], 0, "{k}");
    }
}

#[test]
fn every_way_by_default_with_a_summary() {
    let run = run_json("parent-death", &["--linger-ms", "0"]);
    run.assert_verified();
    // nginx's section runs where nginx is installed, and is skipped with a note elsewhere.
    let nginx = run.observation("nginx")["started"] == true;
    let rows = run.observation("summary")["rows"].as_array().unwrap().clone();
    // "died with it": the plain fork and nginx's workers say NO.
    let died: Vec<&str> = rows.iter().map(|r| r[3].as_str().unwrap()).collect();
    let want: &[&str] = if nginx {
        &["NO", "yes", "yes", "yes", "NO"]
    } else {
        &["NO", "yes", "yes", "yes"]
    };
    assert_eq!(died, want);
    for s in ["plain", "pdeathsig", "pgroup", "pipe"] {
        assert!(!fates(&run, s, "child").is_empty(), "no fate for {s}");
    }
    let ways = run.observation("ways");
    assert_eq!(
        ways["shown"].as_array().map(|a| a.len()),
        Some(want.len()),
        "{ways}"
    );
}

// Each way's phenomenon removed by one change in the real lab code: the verdict turns.

#[test]
fn children_that_die_with_their_parent_turn_the_plain_verdict() {
    // The plain children ask for PR_SET_PDEATHSIG(SIGKILL): nothing survives the parent.
    let run = run_removed(
        "parent-death",
        &["--scenario", "plain", "--linger-ms", "50"],
        "plain_pdeathsig",
    );
    run.assert_not_observed("plain_children_survive");
    assert!(fates(&run, "plain", "child")
        .iter()
        .all(|k| k["fate"]["alive"] == false));
    let ways = run.observation("ways");
    assert!(ways["shown"][0].as_str().unwrap().contains("not shown"), "{ways}");
}

#[test]
fn without_the_getppid_recheck_the_late_child_outlives_its_parent() {
    let run = run_removed(
        "parent-death",
        &["--scenario", "pdeathsig", "--children", "1", "--linger-ms", "0"],
        "no_recheck",
    );
    run.assert_not_observed("pdeathsig_race_caught");
    assert!(run.check("pdeathsig_children_die"), "the others still die");
    let late = fates(&run, "pdeathsig", "late child");
    assert_eq!(late[0]["fate"]["alive"], true, "{}", late[0]);
}

#[test]
fn without_its_own_group_the_group_signal_reaches_nobody() {
    // The parent does not call setpgid: killpg(parent's pid) fails with ESRCH, an
    // observation (exit 3), never a crash (exit 1).
    let run = run_removed("parent-death", &["--scenario", "pgroup"], "no_setpgid");
    run.assert_not_observed("pgroup_members_die");
}

#[test]
fn children_that_keep_a_write_end_never_see_eof() {
    let run = run_removed(
        "parent-death",
        &["--scenario", "pipe", "--children", "1", "--linger-ms", "0"],
        "writer_kept",
    );
    run.assert_not_observed("pipe_children_exit");
    assert_eq!(fates(&run, "pipe", "child")[0]["fate"]["alive"], true);
}

#[test]
fn pipe_children_exit_zero_after_being_seen_in_read() {
    let run = run_json(
        "parent-death",
        &["--scenario", "pipe", "--children", "2", "--linger-ms", "0"],
    );
    run.assert_verified();
    let seen = run.observations("pipe_blocked");
    assert_eq!(seen.len(), 2);
    for o in seen {
        assert_eq!(o["in_read"], true, "{o}");
        assert!(o["pipe"].as_str().unwrap().starts_with("pipe:["), "{o}");
    }
}

#[test]
fn children_that_never_read_the_pipe_do_not_prove_eof() {
    // They close the read end and watch getppid: they still exit 0 when the parent
    // dies, so only the observation before the kill tells them apart.
    let run = run_removed(
        "parent-death",
        &["--scenario", "pipe", "--children", "2", "--linger-ms", "0"],
        "child_closes_read_end",
    );
    run.assert_not_observed("pipe_children_blocked");
    assert!(run.check("pipe_children_exit"), "they exited 0 all the same");
    assert!(run.observations("pipe_blocked").iter().all(|o| o["in_read"] == false));
}

/// Interrupt the lab at the first observation `kind` of `scenario` (`pause` makes it wait
/// there) and check that nothing of it is left: the observer's cleanup reaches the grandchildren.
fn sigint_at(scenario: &str, kind: &str, pause: &str) {
    let mut s =
        start_json("parent-death", &["--scenario", scenario, pause, "30000"]);
    s.wait_for(|v| v["event"] == "observation" && v["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} observation in {scenario}"));
    interrupt_dies_of(s, libc::SIGINT);
}

#[test]
fn sigint_while_parent_and_children_are_up_leaves_nothing() {
    // The grandchildren are still the parent's children here.
    for scenario in ["plain", "pdeathsig", "pgroup", "pipe"] {
        sigint_at(scenario, "family", "--hold-ms");
    }
}

#[test]
fn sigint_while_orphans_linger_leaves_nothing() {
    // The parent is dead and reaped; its children are now the observer's.
    sigint_at("plain", "parent_death", "--linger-ms");
}

#[test]
fn sigint_at_any_early_moment_leaves_nothing() {
    // Not synchronisation: these delays only sample different moments (before the handler is
    // installed, while a family is being forked and its pids are not all known yet, after).
    // Whatever the moment, no process of the run may be left.
    for delay_ms in [0u64, 1, 2, 4, 8, 16, 32, 64] {
        let s = start_json("parent-death", &["--hold-ms", "30000"]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        interrupt(s, libc::SIGINT);
    }
}

#[test]
fn a_sigkilled_observer_takes_every_family_along() {
    // The children are meant to survive their parent, not the observer: each holds a
    // lifeline to it. Killed while a family is up, and while orphans linger.
    for scenario in ["plain", "pdeathsig", "pgroup", "pipe"] {
        let reached = sigkill_at(
            "parent-death",
            &["--scenario", scenario, "--hold-ms", "30000"],
            1,
            |e| e["event"] == "observation" && e["kind"] == "family",
            Duration::from_millis(50),
        );
        assert!(reached, "{scenario}: the family never came up");
    }
    let reached = sigkill_at(
        "parent-death",
        &["--scenario", "plain", "--linger-ms", "30000"],
        1,
        |e| e["event"] == "observation" && e["kind"] == "parent_death",
        Duration::from_millis(50),
    );
    assert!(reached, "the plain parent was never killed");
}

#[test]
fn bad_flags_exit_2() {
    assert_usage_error("parent-death", &["--children", "0"]);
    assert_usage_error("parent-death", &["--children", "17"]);
    assert_usage_error("parent-death", &["--scenario", "exec"]);
    assert_usage_error("parent-death", &["--linger-ms", "-1"]);
    assert_usage_error("parent-death", &["--linger-ms", "60001"]);
    assert_usage_error("parent-death", &["--hold-ms", "x"]);
    assert_usage_error("parent-death", &["--linger", "10"]);
    assert_usage_error("parent-death", &["--no-such-flag"]);
}

/// True if `pid` is a live (non-zombie) process running nginx.
fn nginx_alive(pid: i64) -> bool {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let zombie =
        stat.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z'));
    !zombie && String::from_utf8_lossy(&cmd).contains("nginx")
}

/// The pids (master and workers) of the run's nginx, or None where nginx did not run
/// (not installed: the section says so and is skipped).
fn nginx_pids(o: &Value) -> Option<Vec<i64>> {
    if o["started"] != true {
        eprintln!("nginx did not run here, skipping: {o}");
        return None;
    }
    let mut pids: Vec<i64> = o["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_i64().unwrap())
        .collect();
    pids.push(o["master_pid"].as_i64().unwrap());
    Some(pids)
}

#[test]
fn nginx_workers_outlive_a_kill_9_of_their_master_and_keep_serving() {
    let run =
        run_json("parent-death", &["--scenario", "nginx", "--linger-ms", "50"]);
    let Some(pids) = nginx_pids(run.observation("nginx")) else {
        return;
    };
    run.assert_verified();
    assert_eq!(parent_signal(&run, "nginx"), "SIGKILL");
    let workers = fates(&run, "nginx", "worker");
    assert_eq!(workers.len(), 2);
    for w in &workers {
        assert_eq!(w["fate"]["alive"], true, "{w}");
        assert_eq!(w["fate"]["ppid"], w["observer"], "{w}");
    }
    let answered = run.observation("nginx_request")["answered_by"].as_i64();
    assert!(answered.is_some_and(|p| pids[..2].contains(&p)), "a worker answered");
    assert!(pids.iter().all(|&p| !nginx_alive(p)), "no nginx left: {pids:?}");
    assert!(
        !std::path::Path::new(&format!(
            "/tmp/proclab-nginx-{}",
            run.observation("subreaper")["pid"]
        ))
        .exists(),
        "the temporary prefix is removed"
    );
}

#[test]
fn nginx_workers_killed_with_their_group_turn_the_verdict() {
    // One thing changed: the observer signals the master's process group, not the master.
    let run = run_removed("parent-death", &["--scenario", "nginx"], "nginx_killpg");
    let Some(pids) = nginx_pids(run.observation("nginx")) else { return };
    run.assert_not_observed("nginx_workers_survive");
    assert!(pids.iter().all(|&p| !nginx_alive(p)));
}

#[test]
fn a_sigkilled_observer_leaves_no_nginx_behind() {
    // nginx's workers hold no lifeline of ours, and their environment (the test's tag) is
    // overwritten by nginx's process titles: the lab's sentinel kills their group.
    for (kind, pause) in [("nginx", "--hold-ms"), ("parent_death", "--linger-ms")] {
        let mut s =
            start_json("parent-death", &["--scenario", "nginx", pause, "30000"]);
        let up = s
            .wait_for(|v| v["event"] == "observation" && v["kind"] == "nginx")
            .expect("the nginx observation");
        let Some(pids) = nginx_pids(&up) else {
            interrupt(s, libc::SIGINT);
            return;
        };
        if kind != "nginx" {
            s.wait_for(|v| v["event"] == "observation" && v["kind"] == kind)
                .expect("the master was killed");
        }
        let killed = std::time::Instant::now();
        sigkill_leaves_nothing(s);
        while pids.iter().any(|&p| nginx_alive(p)) {
            assert!(
                killed.elapsed() < Duration::from_secs(1),
                "nginx processes alive 1 s after the lab's SIGKILL: {pids:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Live nginx processes that run from `prefix`, the lab's temporary nginx prefix (their
/// working directory; once it is removed the link reads `PREFIX (deleted)`).
fn nginx_running_in(prefix: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cwd =
            std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
        if cwd.to_string_lossy().starts_with(prefix) && nginx_alive(pid as i64) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn a_ctrl_c_to_the_group_during_nginx_start_leaves_no_nginx() {
    if proclab::nginx::find().is_none() {
        eprintln!("nginx is not installed here, skipping");
        return;
    }
    // A terminal's Ctrl-C goes to the lab's whole process group, the sentinel included.
    // The delays only sample instants of the start (fork, exec, workers forked, up).
    for delay_ms in [0u64, 1, 3, 6, 10, 20, 40, 80] {
        let mut s = start_json_own_group(
            "parent-death",
            &["--scenario", "nginx", "--hold-ms", "30000"],
        );
        let prefix =
            std::env::temp_dir().join(format!("proclab-nginx-{}", s.child.id()));
        let prefix = prefix.display().to_string();
        s.wait_for(|v| {
            v["event"] == "section"
                && v["title"].as_str().is_some_and(|t| t.starts_with("5."))
        })
        .expect("section 5 starts");
        std::thread::sleep(Duration::from_millis(delay_ms));
        use std::os::unix::process::ExitStatusExt;
        let status = interrupt_group(s, libc::SIGINT);
        assert_eq!(status.signal(), Some(libc::SIGINT), "at {delay_ms} ms");
        let since = std::time::Instant::now();
        loop {
            let left = nginx_running_in(&prefix);
            if left.is_empty() {
                break;
            }
            if since.elapsed() > Duration::from_secs(1) {
                for p in &left {
                    // SAFETY: kill has no memory-safety preconditions; ours to clean.
                    unsafe { libc::kill(*p, libc::SIGKILL) };
                }
                panic!("{delay_ms} ms into nginx's start: nginx left: {left:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
