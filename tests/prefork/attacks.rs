//! Slow and idle clients: the demo's attack sections with each phenomenon removed in turn,
//! a SIGKILL or a signal in the middle of an attack (nginx's processes too, which no tag
//! in their environment finds), and each defence in server mode. The figures themselves
//! are the lab's checks (judged on the best of three tries); these tests assert
//! phenomena with wide margins.

use super::*;

fn num(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"))
}

/// What the full demo's attack sections must show, beyond their checks.
pub fn assert_the_attack_sections(run: &Run) {
    let off = run.observation("idle_off");
    assert!(num(off, "share") < 50.0 && num(off, "free") == 0.0, "{off}");
    let on = run.observation("idle_on");
    assert!(num(on, "syn_recv") > 0.0, "the kernel held them before accept: {on}");
    let ka = run.observation("keepalive_idle");
    assert!(ka["off_ms"].is_null() && ka["on_ms"].is_u64(), "{ka}");
    let slow = run.observation("slow_on");
    assert!(
        num(slow, "cut") >= 1.0 && slow["cut"] == slow["answered_408"],
        "{slow}"
    );
    let limit = run.observation("slow_limit");
    assert!(num(limit, "share") < 50.0, "{limit}");
    if run.observation("nginx")["started"] == true {
        let n = run.observation("behind_nginx");
        let attackers = num(n, "idle") + num(n, "slow");
        assert!(num(n, "held") >= attackers / 2.0, "nginx holds the attack: {n}");
        assert!(num(n, "queued") < 10.0, "the workers see none of it: {n}");
    }
}

fn part(name: &'static str, extra: &[&'static str]) -> Vec<&'static str> {
    let mut args = vec!["--demo", "--part", name];
    args.extend_from_slice(extra);
    args
}

#[test]
fn idle_clients_against_a_server_left_defended_do_not_starve_it() {
    let _turn = attacking();
    let run = run_removed("prefork", &part("idle", &[]), "defences_stay_on");
    run.assert_not_observed("idle_starve");
}

#[test]
fn without_defer_accept_or_a_keepalive_timeout_idle_clients_win() {
    // The workers keep the first-byte deadline themselves, one idle connection at a time;
    // a kept-alive connection may stay silent as long as it likes.
    let _turn = attacking();
    let args = part("idle", &["--no-defer-accept", "--keepalive-ms", "0"]);
    let run = run_json("prefork", &args);
    run.assert_not_observed("idle_defended");
    run.assert_not_observed("keepalive_cut");
    assert!(num(run.observation("idle_on"), "share") < 50.0);
}

#[test]
fn slow_heads_against_a_server_left_defended_are_cut() {
    let _turn = attacking();
    let run = run_removed("prefork", &part("slow", &[]), "defences_stay_on");
    run.assert_not_observed("slow_holds");
}

#[test]
fn without_a_head_deadline_no_slow_head_is_cut() {
    let _turn = attacking();
    let run = run_json("prefork", &part("slow", &["--head-ms", "0"]));
    run.assert_not_observed("slow_cut_in_time");
    assert_eq!(run.observation("slow_on")["cut"], 0);
}

#[test]
fn fewer_slow_heads_than_workers_do_not_exhaust_them() {
    let _turn = attacking();
    let run = run_json("prefork", &part("slow", &["--slow", "2"]));
    run.assert_not_observed("slow_exhausts_workers");
}

#[test]
fn an_attack_that_goes_around_nginx_reaches_the_workers() {
    let _turn = attacking();
    let run = run_removed("prefork", &part("nginx", &[]), "nginx_bypassed");
    if run.observation("nginx")["started"] != true {
        eprintln!("nginx did not run here, skipping");
        return;
    }
    run.assert_not_observed("nginx_serves");
}

#[test]
fn a_missing_nginx_skips_its_section_and_changes_no_verdict() {
    let _turn = attacking();
    let run = run_removed("prefork", &part("slow,nginx", &[]), "nginx_missing");
    run.assert_verified();
    let n = run.observation("nginx");
    assert_eq!(n["installed"], false, "{n}");
    assert!(
        n["text"].as_str().unwrap().contains("apt-get install -y nginx"),
        "{n}"
    );
    assert!(run.observations("behind_nginx").is_empty());
}

/// True if `pid` is a live (non-zombie) process running nginx.
fn nginx_alive(pid: i64) -> bool {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    alive(pid as i32) && String::from_utf8_lossy(&cmd).contains("nginx")
}

/// Start `--demo --part nginx`; the nginx observation, or None where nginx is missing.
fn demo_with_nginx() -> (Started, Option<(Vec<i64>, String)>) {
    let mut s = start_json("prefork", &["--demo", "--part", "nginx"]);
    let up = s.wait_for(|v| v["kind"] == "nginx").expect("the nginx observation");
    if up["started"] != true {
        return (s, None);
    }
    let mut pids: Vec<i64> = up["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_i64().unwrap())
        .collect();
    pids.push(up["master_pid"].as_i64().unwrap());
    (s, Some((pids, up["prefix"].as_str().unwrap().to_string())))
}

#[test]
fn a_sigkilled_demo_leaves_no_nginx_no_prefix_and_no_worker_behind() {
    let _turn = attacking();
    let (s, nginx) = demo_with_nginx();
    let Some((pids, prefix)) = nginx else {
        interrupt(s, libc::SIGINT);
        return;
    };
    std::thread::sleep(Duration::from_millis(400)); // into the attack
    let killed = Instant::now();
    sigkill_leaves_nothing(s); // the workers and the sentinel (they carry the tag)
    while pids.iter().any(|&p| nginx_alive(p))
        || std::path::Path::new(&prefix).exists()
    {
        assert!(
            killed.elapsed() < Duration::from_secs(1),
            "1 s after the lab's SIGKILL: nginx {pids:?} or {prefix} is left"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn an_attack_interrupted_by_a_signal_cleans_up_and_dies_of_it() {
    let _turn = attacking();
    for (name, sig) in [("idle", libc::SIGINT), ("slow", libc::SIGTERM)] {
        let mut s = start_json("prefork", &part(name, &[]));
        s.wait_for(|v| v["event"] == "section").expect("the section starts");
        std::thread::sleep(Duration::from_millis(300)); // into the first attack
        interrupt_dies_of(s, sig);
    }
    let (s, nginx) = demo_with_nginx();
    std::thread::sleep(Duration::from_millis(300));
    interrupt_dies_of(s, libc::SIGINT);
    if let Some((pids, prefix)) = nginx {
        let gone = until(Duration::from_secs(1), || {
            (!pids.iter().any(|&p| nginx_alive(p))
                && !std::path::Path::new(&prefix).exists())
            .then_some(())
        });
        assert!(gone.is_some(), "nginx {pids:?} or {prefix} left after SIGINT");
    }
}

/// Open a connection to `port` and send nothing.
fn silent(port: u16) -> TcpStream {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Read until the server closes `s` (or 5 s): what came.
fn until_closed(s: &mut TcpStream) -> String {
    let mut got = String::new();
    let _ = s.read_to_string(&mut got);
    got
}

#[test]
fn a_silent_connection_waits_in_the_kernel_not_in_a_worker() {
    // TCP_DEFER_ACCEPT (the default, for --first-byte-ms 1000): the only worker stays in
    // accept4 and serves others; after a second the kernel hands the connection over,
    // and the worker, seeing no byte, closes it at once.
    let mut srv = Server::start(&["--workers", "1"]);
    let worker = srv.workers_started(1)[0];
    let t = Instant::now();
    let mut idle = silent(srv.port);
    assert_eq!(get(srv.port, "/").expect("served meanwhile").0, 200);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(syscall_of(worker), Some(libc::SYS_accept4), "the worker is free");
    assert_eq!(until_closed(&mut idle), "", "closed without an answer");
    let lived = t.elapsed();
    assert!(
        lived >= Duration::from_millis(900) && lived < Duration::from_secs(4),
        "{lived:?}"
    );
    assert_eq!(srv.stop(libc::SIGTERM), Some(0));
}

#[test]
fn without_defer_accept_a_worker_waits_for_the_first_byte_itself() {
    let mut srv = Server::start(&[
        "--workers",
        "1",
        "--no-defer-accept",
        "--first-byte-ms",
        "300",
    ]);
    let worker = srv.workers_started(1)[0];
    let t = Instant::now();
    let mut idle = silent(srv.port);
    let held = until(Duration::from_secs(2), || {
        (syscall_of(worker) != Some(libc::SYS_accept4)).then_some(())
    });
    assert!(held.is_some(), "the worker took the silent connection");
    assert_eq!(until_closed(&mut idle), "");
    let lived = t.elapsed();
    assert!(
        lived >= Duration::from_millis(250) && lived < Duration::from_secs(3),
        "{lived:?}"
    );
    assert_eq!(get(srv.port, "/").unwrap().0, 200);
    assert_eq!(srv.stop(libc::SIGTERM), Some(0));
}

#[test]
fn a_slow_head_is_cut_with_408_and_cannot_hold_the_only_worker() {
    let mut srv = Server::start(&[
        "--workers",
        "1",
        "--head-ms",
        "300",
        "--head-max-ms",
        "300",
    ]);
    srv.workers_started(1);
    let mut slow = silent(srv.port);
    slow.write_all(b"GET / HTTP/1.1\r\nHo").unwrap(); // and never the rest
    let t = Instant::now();
    assert_eq!(get(srv.port, "/").expect("served after the slow one").0, 200);
    assert!(t.elapsed() < Duration::from_secs(3));
    let answer = until_closed(&mut slow);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
    assert!(
        answer.contains("bytes in"),
        "the worker says what it read: {answer:?}"
    );
    assert_eq!(srv.stop(libc::SIGTERM), Some(0));
}

#[test]
fn a_kept_alive_connection_silent_too_long_is_closed() {
    for (limit, closes) in [("300", true), ("0", false)] {
        let srv = Server::start(&["--workers", "1", "--keepalive-ms", limit]);
        let mut s = silent(srv.port);
        s.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        let mut buf = [0u8; 1024];
        assert!(s.read(&mut buf).unwrap() > 0, "answered");
        let t = Instant::now();
        let end = s.read(&mut buf);
        if closes {
            assert_eq!(end.ok(), Some(0), "closed");
            let after = t.elapsed();
            assert!(
                after >= Duration::from_millis(250)
                    && after < Duration::from_secs(2)
            );
        } else {
            assert!(end.is_err(), "--keepalive-ms 0: still open after 1.5 s");
        }
        assert_eq!(srv.stop(libc::SIGTERM), Some(0));
    }
}

#[test]
fn max_requests_with_jitter_retires_workers_and_the_master_replaces_them() {
    let mut srv = Server::start(&[
        "--workers",
        "1",
        "--max-requests",
        "3",
        "--max-requests-jitter",
        "2",
    ]);
    srv.workers_started(1);
    let pids: Vec<i32> = (0..24)
        .map(|_| worker_of(&get(srv.port, "/").expect("served").1))
        .collect();
    let mut runs: Vec<(i32, usize)> = Vec::new();
    for p in &pids {
        match runs.last_mut() {
            Some((q, n)) if q == p => *n += 1,
            _ => runs.push((*p, 1)),
        }
    }
    assert!(runs.len() >= 4, "24 requests, 3 to 5 per worker: {runs:?}");
    for (_, n) in &runs[..runs.len() - 1] {
        assert!((3..=5).contains(n), "a worker served 3 to 5 requests: {runs:?}");
    }
    let d = srv.next("worker_died");
    assert_eq!(
        (d["status"]["exited"].as_i64(), d["delay_ms"].as_u64()),
        (Some(0), Some(0)),
        "{d}"
    );
    assert_eq!(srv.stop(libc::SIGINT), Some(0));
}
