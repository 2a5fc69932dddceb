mod common;
use common::*;
use serde_json::Value;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Part 6 runs one at a time: each run makes a network and loads the machine.
static NET: Mutex<()> = Mutex::new(());

fn part(name: &str) -> Vec<&str> {
    vec!["--scenario", name, "--port", "0"]
}

/// The rows of the table observation `kind`.
fn rows(run: &Run, kind: &str) -> Vec<Vec<String>> {
    let t = run.observation(kind);
    let rows = t["rows"].as_array().expect("rows");
    rows.iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn a_formation_runs_each_process_with_its_port_and_the_workers_take_jobs() {
    let mut args = part("formation");
    args.extend(["--formation", "web=3,worker=2"]);
    let run = run_json("formation", &args);
    run.assert_verified();
    let r = rows(&run, "formation");
    assert_eq!(r.len(), 5, "{r:?}");
    let tree = run.observation("tree");
    let manager = tree["root"].as_i64().unwrap().to_string();
    let base: u32 = r[0][3].parse().unwrap();
    for row in &r {
        // process, pid, ppid, PORT, Foreman's rule, answered by
        assert_eq!(row[2], manager, "a child of the manager: {row:?}");
        assert_eq!(row[3], row[4], "PORT by Foreman's rule: {row:?}");
        if row[0].starts_with("web.") {
            assert_eq!(row[5], row[1], "the web itself answered: {row:?}");
        }
    }
    let port = |name: &str| {
        r.iter().find(|x| x[0] == name).unwrap()[3].parse::<u32>().unwrap()
    };
    assert_eq!(port("web.3"), base + 2);
    assert_eq!(port("worker.2"), base + 101);
    assert_eq!(run.observation("jobs")["got"], 30);
    assert_eq!(run.observation("stopped")["left"], serde_json::json!([]));
}

#[test]
fn one_port_for_all_or_reads_bigger_than_a_job_turn_the_verdict() {
    run_removed("formation", &part("formation"), "one_port")
        .assert_not_observed("formation_runs");
    let run = run_removed("formation", &part("formation"), "big_reads");
    run.assert_not_observed("jobs_done_once");
    assert!(run.observation("jobs")["got"].as_u64().unwrap() < 30);
}

#[test]
fn many_processes_writing_long_lines_at_once_arrive_whole_and_named() {
    let mut args = part("streams");
    args.extend(["--chatters", "6", "--line-bytes", "9000"]);
    let run = run_json("formation", &args);
    run.assert_verified();
    let o = run.observation("streams");
    assert_eq!(o["whole"], 600, "{o}");
    assert_eq!(o["torn"], 0, "{o}");
    assert_eq!(o["misnamed"], 0, "{o}");
    assert!(
        o["switches"].as_u64().unwrap() > 0,
        "the processes' lines interleaved: {o}"
    );
}

#[test]
fn a_manager_that_prints_what_each_read_brings_tears_lines() {
    let run = run_removed("formation", &part("streams"), "line_assembly");
    run.assert_not_observed("lines_whole");
    assert!(run.observation("streams")["torn"].as_u64().unwrap() > 0);
}

#[test]
fn crashes_stop_all_with_its_code_or_restart_with_a_new_pid_and_back_off() {
    let run = run_json("formation", &part("crashes"));
    run.assert_verified();
    let codes: Vec<&Value> =
        run.observations("crash").iter().map(|o| &o["code"]).collect();
    assert_eq!(codes, [70, 137], "exit 70, then 128 + SIGKILL");
    let r = run.observation("restart");
    assert_ne!(r["old"], r["new"]);
    assert_eq!(r["answered"], r["new"]);
    let b = run.observation("backoff");
    assert_eq!(b["delays"], serde_json::json!([100, 200, 400]));
    let waited: Vec<u64> = b["waited"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_u64().unwrap())
        .collect();
    assert!(waited.iter().zip([100, 200, 400]).all(|(w, d)| w + 1 >= d), "{b}");
    assert_eq!(b["pids"].as_array().unwrap().len(), 4);
}

#[test]
fn foremans_exit_code_no_waitpid_or_no_backoff_turn_the_verdict() {
    // Foreman keeps `status.exitstatus`, which is nil for a signal: the next code wins.
    let run = run_removed("formation", &part("crashes"), "foreman_exit_code");
    run.assert_not_observed("stop_all_web");
    assert_eq!(run.observations("crash")[1]["code"], 0);
    run_removed("formation", &part("crashes"), "no_waitpid")
        .assert_not_observed("stop_all_worker");
    run_removed("formation", &part("crashes"), "no_backoff")
        .assert_not_observed("backoff");
}

#[test]
fn shutdown_waits_the_grace_period_then_kills_the_stubborn() {
    let mut args = part("shutdown");
    args.extend(["--grace-ms", "400"]);
    let run = run_json("formation", &args);
    run.assert_verified();
    let e = run.observation("escalation");
    assert_eq!(e["deaf"], true, "SigIgn has SIGTERM: {e}");
    assert!(e["stubborn_ms"].as_u64().unwrap() >= 395, "{e}");
    for row in rows(&run, "shutdown") {
        let want = if row[0] == "stubborn.1" {
            "killed by SIGKILL"
        } else {
            "exited, status 0"
        };
        assert_eq!(row[3], want, "{row:?}");
    }
}

#[test]
fn no_escalation_or_no_sigterm_handler_turn_the_verdict() {
    let mut args = part("shutdown");
    args.extend(["--grace-ms", "200"]);
    run_removed("formation", &args, "no_escalation")
        .assert_not_observed("shutdown_escalates");
    run_removed("formation", &args, "no_sigterm_handler")
        .assert_not_observed("shutdown_graceful");
}

#[test]
fn a_daemon_escapes_its_manager_and_a_subreaper_adopts_it_back() {
    let run = run_json("formation", &part("daemon"));
    run.assert_verified();
    let e = run.observation("escaped");
    assert_ne!(e["ppid"], e["manager"]);
    assert_eq!(e["in_tree"], false);
    assert_eq!(e["answered"], e["d"]);
    let s = run.observation("second_copy");
    assert!(
        s["failed"].as_u64().unwrap() > 0 && s["refused"] == s["failed"],
        "{s}"
    );
    assert_eq!(run.observation("stale")["file"], e["d"].to_string());
    let a = run.observation("adopted");
    assert_eq!(a["ppid"], a["manager"]);
    assert_eq!(a["ppid2"], a["manager"]);
}

#[test]
fn a_foreground_process_or_a_subreaper_from_the_start_leave_no_escape() {
    run_removed("formation", &part("daemon"), "foreground")
        .assert_not_observed("daemon_escaped");
    let run = run_removed("formation", &part("daemon"), "subreaper_first");
    run.assert_not_observed("daemon_escaped");
    run.assert_not_observed("stale_pid_file");
    run_removed("formation", &part("daemon"), "no_subreaper")
        .assert_not_observed("subreaper_supervises");
}

/// The names and inodes of the run's namespaces, or None where part 6 was skipped.
fn network(run: &Run) -> Option<(Vec<String>, Vec<u64>)> {
    if let Some(o) = run.observations("scale_out").first() {
        eprintln!("part 6 did not run here: {o}");
        return None;
    }
    let n = run.observation("namespaces");
    let names = n["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().split(' ').next().unwrap().to_string());
    let inodes =
        n["inodes"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap());
    Some((names.collect(), inodes.collect()))
}

/// Nothing of a network is left: no name under /run/netns, no process in it.
fn gone(names: &[String], inodes: &[u64], within: Duration) {
    let t = Instant::now();
    loop {
        let named = names
            .iter()
            .filter(|n| std::path::Path::new("/run/netns").join(n).exists())
            .count();
        let inside = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                let link =
                    std::fs::read_link(e.path().join("ns/net")).unwrap_or_default();
                inodes
                    .iter()
                    .any(|i| link.to_string_lossy() == format!("net:[{i}]"))
            })
            .count();
        if named == 0 && inside == 0 {
            return;
        }
        assert!(t.elapsed() < within, "{named} namespaces and {inside} processes in them left after {within:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn scale_out_spreads_survives_a_host_and_takes_it_back_and_sweeps_a_dead_labs_network(
) {
    let _one = NET.lock().unwrap_or_else(|p| p.into_inner());
    // What a lab killed before its janitor could act would leave: a namespace and a file.
    let dead = std::process::Command::new("true").spawn().unwrap();
    let pid = dead.id();
    let mut dead = dead;
    dead.wait().unwrap();
    let stale = format!("proclab-formation-{pid}-h1");
    let made =
        std::process::Command::new("ip").args(["netns", "add", &stale]).status();
    let mut args = part("scale-out");
    args.extend(["--requests", "100"]);
    let run = run_json("formation", &args);
    let _ =
        std::process::Command::new("ip").args(["netns", "delete", &stale]).status();
    let Some((names, inodes)) = network(&run) else { return };
    run.assert_verified();
    if made.is_ok_and(|s| s.success()) {
        let s = run.observation("stale");
        assert!(s["stale"].to_string().contains(&format!("[{pid},")), "{s}");
    }
    let spread = run.observation("spread");
    assert!(
        spread["h1_1"].as_u64().unwrap() > 0
            && spread["h2_1"].as_u64().unwrap() > 0
    );
    assert_eq!(spread["per"].as_object().unwrap().len(), 4);
    assert!(run.observation("back")["new"].as_u64().unwrap() > 0);
    assert_eq!(run.observation("own_namespace")["unchanged"], true);
    gone(&names, &inodes, Duration::from_millis(1)); // the lab removed it before its end
}

#[test]
fn one_host_only_or_a_host_back_on_other_ports_turn_the_verdict() {
    let _one = NET.lock().unwrap_or_else(|p| p.into_inner());
    let mut args = part("scale-out");
    args.extend(["--requests", "100"]);
    let run = run_removed("formation", &args, "single_host");
    let Some(_) = network(&run) else { return };
    run.assert_not_observed("spread");
    run.assert_not_observed("keeps_answering");
    let run = run_removed("formation", &args, "h1_back_elsewhere,keep_network");
    let (names, inodes) = network(&run).unwrap();
    run.assert_not_observed("comes_back");
    run.assert_not_observed("network_removed");
    gone(&names, &inodes, Duration::from_secs(1)); // the janitor removed it after the lab
}

#[test]
fn a_sigkilled_or_interrupted_lab_leaves_no_network_and_no_nginx() {
    let _one = NET.lock().unwrap_or_else(|p| p.into_inner());
    for (when, sig) in [
        ("namespaces", libc::SIGKILL),
        ("nginx", libc::SIGKILL),
        ("spread", libc::SIGKILL),
        ("nginx", libc::SIGINT),
    ] {
        let mut s = start_json("formation", &part("scale-out"));
        let Some(o) = s.wait_for(|v| v["kind"] == when || v["kind"] == "scale_out")
        else {
            panic!("no {when}")
        };
        if o["kind"] == "scale_out" {
            interrupt(s, libc::SIGINT);
            return; // part 6 does not run here
        }
        let lab = s.child.id();
        let names: Vec<String> = ["lan", "h1", "h2", "lb", "cl"]
            .iter()
            .map(|r| format!("proclab-formation-{lab}-{r}"))
            .collect();
        let inodes: Vec<u64> = names
            .iter()
            .filter_map(|n| {
                use std::os::unix::fs::MetadataExt;
                std::fs::metadata(format!("/run/netns/{n}")).ok().map(|m| m.ino())
            })
            .collect();
        if sig == libc::SIGKILL {
            sigkill_leaves_nothing(s); // the tagged processes; nginx's titles hide its tag
            gone(&names, &inodes, Duration::from_secs(1));
        } else {
            interrupt_dies_of(s, sig);
            gone(&names, &inodes, Duration::from_secs(1));
        }
        let tmp = format!("/tmp/proclab-formation-{lab}-nginx");
        assert!(!std::path::Path::new(&tmp).exists(), "{tmp} is left");
    }
}

#[test]
fn without_root_part_6_says_what_it_needs_and_the_rest_runs() {
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        let run = run_json("formation", &part("scale-out"));
        run.assert_not_observed("spread");
        return;
    }
    for (scenario, code) in [("scale-out", 3), ("shutdown", 0)] {
        let tag = new_tag("formation");
        let out = std::process::Command::new(bin("formation"))
            .args([
                "--json",
                "--scenario",
                scenario,
                "--port",
                "0",
                "--grace-ms",
                "200",
            ])
            .env(TAG_VAR, &tag)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        assert_no_leftovers(&tag, Duration::from_secs(5));
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "as nobody, {scenario}:\n{text}");
        if scenario == "scale-out" {
            assert!(
                text.contains("\"skipped\":true")
                    && text.contains("run it with sudo"),
                "{text}"
            );
        }
    }
}

#[test]
fn an_interrupted_lab_leaves_no_daemon_and_no_file() {
    let mut s = start_json("formation", &part("daemon"));
    s.wait_for(|v| v["kind"] == "escaped").expect("the daemon escaped");
    let lab = s.child.id();
    interrupt_dies_of(s, libc::SIGTERM);
    let left: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("proclab-formation-{lab}-")))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn bad_flags_exit_2() {
    assert_usage_error("formation", &["--formation", "db=1"]);
    assert_usage_error("formation", &["--formation", "web"]);
    assert_usage_error("formation", &["--formation", "web=33"]);
    assert_usage_error("formation", &["--formation", "web=0"]);
    assert_usage_error("formation", &["--grace-ms", "5"]);
    assert_usage_error("formation", &["--chatters", "0"]);
    assert_usage_error("formation", &["--line-bytes", "60001"]);
    assert_usage_error("formation", &["--port", "70000"]);
    assert_usage_error("formation", &["--port", "60001"]);
    assert_usage_error("formation", &["--requests", "1"]);
    assert_usage_error("formation", &["--scenario", "nginx"]);
}
