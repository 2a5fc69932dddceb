//! The prefork server: its demo's verdict, and the server itself driven by a bounded client
//! of our own (no wrk), on 127.0.0.1 with a port the kernel picks. HTTP as the RFCs say is
//! in prefork/http.rs, the slow and idle clients and nginx in front in prefork/attacks.rs.
mod common;
use common::*;

#[path = "prefork/attacks.rs"]
mod attacks;
#[path = "prefork/http.rs"]
mod http;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A server started with `--json --port 0`; killed (with its workers, by PDEATHSIG) if a
/// test fails half-way.
pub struct Server {
    s: Option<Started>,
    pub port: u16,
    pub master: i32,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        let mut all = vec!["--port", "0"];
        all.extend_from_slice(args);
        let mut s = start_json("prefork", &all);
        let l = s
            .wait_for(|v| v["kind"] == "listening")
            .expect("listening observation");
        Server {
            port: l["port"].as_u64().expect("port") as u16,
            master: l["pid"].as_i64().expect("pid") as i32,
            s: Some(s),
        }
    }
    fn started(&mut self) -> &mut Started {
        self.s.as_mut().expect("running")
    }
    /// The next `n` workers the master reports forking.
    pub fn workers_started(&mut self, n: usize) -> Vec<i32> {
        (0..n)
            .map(|_| {
                let v = self
                    .started()
                    .wait_for(|v| v["kind"] == "worker_started")
                    .expect("worker_started");
                v["pid"].as_i64().unwrap() as i32
            })
            .collect()
    }
    pub fn next(&mut self, kind: &str) -> Value {
        let k = kind.to_string();
        self.started()
            .wait_for(move |v| v["kind"] == k.as_str())
            .unwrap_or_else(|| panic!("no {kind} observation"))
    }
    /// Send `sig`, wait for the end, assert nothing is left; returns the exit code.
    pub fn stop(mut self, sig: i32) -> Option<i32> {
        interrupt(self.s.take().expect("running"), sig).code()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut s) = self.s.take() {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
    }
}

/// Send raw bytes on a new connection and read until the server closes it (bounded).
pub fn raw(port: u16, req: &[u8]) -> Result<String, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(req).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.take(1 << 20).read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// GET `path` with `Connection: close`: (status, body).
pub fn get(port: u16, path: &str) -> Result<(u16, String), String> {
    let text = raw(
        port,
        format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )?;
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or(format!("no status in {text:?}"))?;
    let body =
        text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

pub fn worker_of(body: &str) -> i32 {
    body.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0)
}

pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')').next().map(|r| !r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

pub fn syscall_of(pid: i32) -> Option<i64> {
    std::fs::read_to_string(format!("/proc/{pid}/syscall"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub fn until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The demo runs that attack the server take turns: two at once on a small machine would
/// measure each other.
pub static ATTACKS: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn attacking() -> std::sync::MutexGuard<'static, ()> {
    ATTACKS.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn demo_verifies_spread_replacement_and_graceful_stop() {
    let _turn = attacking();
    let run = run_json("prefork", &["--demo"]);
    run.assert_verified();
    attacks::assert_the_attack_sections(&run);
    // One connection at a time with every worker asleep in accept4: the kernel wakes
    // the one that has waited longest, so the workers take turns.
    let order = run.observation("wake_order");
    let workers: Vec<i64> = order["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_i64().unwrap())
        .collect();
    let served: Vec<i64> = order["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_i64().unwrap())
        .collect();
    assert_eq!(served.len(), 10 * workers.len(), "{order}");
    for w in &workers {
        assert_eq!(served.iter().filter(|s| *s == w).count(), 10, "{order}");
    }
    for pair in served.windows(2) {
        assert_ne!(pair[0], pair[1], "the newest waiter was woken: {order}");
    }
    let spread = run.observation("spread");
    assert!(spread["rows"].as_array().unwrap().len() > 1, "{spread}");
    let deaths = run.observations("worker_died");
    assert!(deaths
        .iter()
        .any(|d| d["status"]["signal"] == "SIGKILL" && d["replaced"] == true));
    assert!(deaths
        .iter()
        .any(|d| d["status"]["exited"] == 0 && d["replaced"] == true));
    assert_eq!(run.observation("in_flight_answer")["ok"], true);
    assert_eq!(run.observation("after_stop")["refused"], true);
}

#[test]
fn the_kills_the_stop_and_the_forks_are_named_and_the_workers_accept_again() {
    let run = run_json("prefork", &["--demo", "--part", "server"]);
    run.assert_verified();
    // Every worker forked is named with the master as its parent, from /proc.
    let started = run.observations("worker_started");
    let master = started[0]["ppid"].as_i64().unwrap();
    assert!(
        master > 0 && started.iter().all(|s| s["ppid"] == master),
        "{started:?}"
    );
    // Section 3 names the signals it sends, each to its worker.
    let kills = run.observations("kill");
    let sent: Vec<&str> =
        kills.iter().map(|k| k["sent"].as_str().unwrap()).collect();
    assert_eq!(sent, ["SIGTERM", "SIGKILL"], "{kills:?}");
    assert!(kills.iter().all(|k| k["pid"].as_i64().unwrap() > 0), "{kills:?}");
    // Before section 4 every worker, the two new ones too, sleeps in accept4 again.
    let back = run.observation("back_in_accept");
    assert_eq!(back["accepting"], back["n"], "{back}");
    assert_eq!(back["workers"].as_array().unwrap().len(), 3, "{back}");
    // The stop names the signal and every worker it went to.
    let stop = run.observation("stop");
    assert_eq!(stop["sent"], "SIGTERM", "{stop}");
    assert_eq!(stop["signalled"].as_array().unwrap().len(), 3, "{stop}");
}

#[test]
fn workers_that_wait_in_epoll_exclusive_do_not_take_turns() {
    // One thing changed: each worker waits in epoll_pwait (its own instance, EPOLLEXCLUSIVE)
    // before accept. The kernel then wakes the first idle worker that registered, every time.
    let run =
        run_removed("prefork", &["--demo", "--part", "server"], "epoll_exclusive");
    run.assert_not_observed("longest_waiting_woken");
    run.assert_not_observed("spread");
}

#[test]
fn workers_with_sockets_of_their_own_do_not_share_one() {
    // One thing changed: every worker opens its own socket on the port (SO_REUSEPORT).
    let run = run_removed("prefork", &["--demo", "--part", "server"], "own_socket");
    run.assert_not_observed("one_socket_all_in_accept");
}

#[test]
fn a_master_that_does_not_replace_the_dead_fails_the_replacement_check() {
    let run =
        run_removed("prefork", &["--demo", "--part", "server"], "no_replacement");
    run.assert_not_observed("replaced");
    let deaths = run.observations("worker_died");
    assert!(deaths.iter().take(2).all(|d| d["replaced"] == false), "{deaths:?}");
}

#[test]
fn a_worker_that_leaves_at_sigterm_drops_the_request_in_flight() {
    let run =
        run_removed("prefork", &["--demo", "--part", "server"], "sigterm_fast");
    run.assert_not_observed("in_flight_finished");
    assert_eq!(run.observation("in_flight_answer")["ok"], false);
}

#[test]
fn without_keep_alive_a_connection_carries_one_request() {
    let run = run_removed("prefork", &["--demo", "--part", "server"], "close_each");
    run.assert_not_observed("keepalive_one_worker");
}

#[test]
fn an_interrupted_demo_cleans_up_and_dies_of_the_signal() {
    // SIGINT and SIGTERM at the start of each section and a moment into it: the harness's
    // handler kills and reaps the workers, then the lab dies of the signal it was sent.
    let mut runs = 0;
    for section in 1..=4 {
        for after in [0, 150] {
            for sig in [libc::SIGINT, libc::SIGTERM] {
                let mut s = start_json("prefork", &["--demo", "--part", "server"]);
                let mut seen = 0;
                s.wait_for(|v| {
                    seen += (v["event"] == "section") as usize;
                    seen == section
                })
                .expect("the section starts");
                std::thread::sleep(Duration::from_millis(after));
                interrupt_dies_of(s, sig);
                runs += 1;
            }
        }
    }
    assert_eq!(runs, 16);
}

#[test]
fn requests_spread_a_killed_worker_is_replaced_and_graceful_stop_loses_nothing() {
    let mut srv = Server::start(&["--workers", "3"]);
    let workers = srv.workers_started(3);
    let port = srv.port;

    // Spread: concurrent clients, one connection per request.
    let clients: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(move || {
                (0..15).map(|_| get(port, "/")).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for c in clients {
        for r in c.join().unwrap() {
            let (status, body) = r.expect("request");
            assert_eq!(status, 200);
            seen.insert(worker_of(&body));
        }
    }
    assert!(seen.len() > 1, "45 requests all served by one worker: {seen:?}");
    assert!(seen.iter().all(|p| workers.contains(p)));

    // Kill one worker: the master reaps it, forks a replacement, requests keep succeeding.
    let victim = workers[0];
    unsafe { libc::kill(victim, libc::SIGKILL) };
    let died = srv.next("worker_died");
    assert_eq!(died["pid"], victim);
    assert_eq!(died["status"]["signal"], "SIGKILL");
    let new = srv.workers_started(1)[0];
    assert!(!workers.contains(&new));
    for _ in 0..20 {
        assert_eq!(get(port, "/").expect("request after the kill").0, 200);
    }
    assert!(!alive(victim));

    // Graceful stop with a request in flight: it is answered, then every worker exits.
    let now: Vec<i32> = vec![workers[1], workers[2], new];
    let in_flight = std::thread::spawn(move || get(port, "/work?ms=800"));
    let sleeping = until(Duration::from_secs(10), || {
        now.iter()
            .copied()
            .find(|&p| syscall_of(p) == Some(libc::SYS_clock_nanosleep))
    });
    assert!(sleeping.is_some(), "no worker seen serving /work");
    assert_eq!(srv.stop(libc::SIGTERM), Some(0), "graceful stop verifies");
    let (status, body) =
        in_flight.join().unwrap().expect("in-flight request answered");
    assert_eq!(status, 200);
    assert!(body.contains("slept 800 ms"), "{body}");
    for p in now {
        assert!(!alive(p), "worker {p} alive after shutdown");
    }
}

#[test]
fn sighup_replaces_every_worker_and_ttin_ttou_resize() {
    let mut srv = Server::start(&["--workers", "2"]);
    let old = srv.workers_started(2);
    let port = srv.port;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let (stop, count) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let (flag, done) = (stop.clone(), count.clone());
    let load = std::thread::spawn(move || {
        let mut results = Vec::new();
        while !flag.load(Ordering::SeqCst) && results.len() < 5000 {
            results.push(get(port, "/"));
            done.fetch_add(1, Ordering::SeqCst);
        }
        results
    });
    let at_least = |n: usize| {
        until(Duration::from_secs(10), || {
            (count.load(Ordering::SeqCst) >= n).then_some(())
        })
    };
    at_least(10);
    unsafe { libc::kill(srv.master, libc::SIGHUP) };
    let mut replaced = Vec::new();
    for _ in 0..2 {
        let d = srv.next("worker_died");
        assert_eq!(d["status"]["exited"], 0, "an old worker exits gracefully: {d}");
        assert_eq!(d["replaced"], false, "{d}");
        replaced.push(d["pid"].as_i64().unwrap() as i32);
    }
    replaced.sort();
    let mut o = old.clone();
    o.sort();
    assert_eq!(replaced, o, "every old worker replaced");
    at_least(count.load(Ordering::SeqCst) + 10);
    stop.store(true, Ordering::SeqCst);
    let results = load.join().unwrap();
    assert!(results.len() >= 20);
    let failed: Vec<_> =
        results.iter().filter(|r| !matches!(r, Ok((200, _)))).collect();
    assert!(failed.is_empty(), "requests failed during SIGHUP: {failed:?}");

    unsafe { libc::kill(srv.master, libc::SIGTTIN) };
    assert_eq!(srv.next("resize")["want"], 3);
    srv.workers_started(1);
    unsafe { libc::kill(srv.master, libc::SIGTTOU) };
    assert_eq!(srv.next("resize")["want"], 2);
    let d = srv.next("worker_died");
    assert_eq!(d["replaced"], false, "{d}");
    assert_eq!(srv.stop(libc::SIGTERM), Some(0));
}

#[test]
fn a_crash_loop_is_restarted_with_back_off() {
    let mut srv = Server::start(&["--workers", "1", "--broken-workers"]);
    let t = Instant::now();
    let delays: Vec<u64> = (0..5)
        .map(|_| {
            let d = srv.next("worker_died");
            assert_eq!(d["status"]["exited"], 70);
            d["delay_ms"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(delays, vec![0, 100, 200, 400, 800], "back-off doubles");
    assert!(t.elapsed() >= Duration::from_millis(700), "not a tight loop");
    assert_eq!(srv.stop(libc::SIGINT), Some(0));
}

#[test]
fn workers_exit_when_the_master_is_killed() {
    let mut srv = Server::start(&["--workers", "2"]);
    let workers = srv.workers_started(2);
    let mut s = srv.s.take().unwrap();
    unsafe { libc::kill(srv.master, libc::SIGKILL) };
    let _ = s.child.wait();
    let gone = until(Duration::from_secs(5), || {
        workers.iter().all(|&p| !alive(p)).then_some(())
    });
    assert!(gone.is_some(), "workers outlived their master: {workers:?}");
    assert_no_leftovers(&s.tag, Duration::from_secs(5));
}

#[test]
fn the_threads_model_serves_and_stops_gracefully() {
    let srv = Server::start(&["--workers", "2", "--model", "threads"]);
    let port = srv.port;
    let in_flight = std::thread::spawn(move || get(port, "/work?ms=300"));
    for _ in 0..10 {
        let (status, body) = get(port, "/").unwrap();
        assert_eq!(status, 200);
        assert!(worker_of(&body) > 0);
    }
    until(Duration::from_secs(5), || in_flight.is_finished().then_some(()));
    assert_eq!(in_flight.join().unwrap().unwrap().0, 200);
    assert_eq!(srv.stop(libc::SIGTERM), Some(0));
}

#[test]
fn bad_flags_exit_2() {
    assert_usage_error("prefork", &["--workers", "0"]);
    assert_usage_error("prefork", &["--workers", "1000"]);
    assert_usage_error("prefork", &["--port", "70000"]);
    assert_usage_error("prefork", &["--head-ms", "60001"]);
    assert_usage_error("prefork", &["--model", "fibers"]);
    assert_usage_error("prefork", &["--demo", "--model", "threads"]);
    assert_usage_error("prefork", &["--demo", "--reuseport"]);
    assert_usage_error("prefork", &["--demo", "--workers", "1"]);
    assert_usage_error("prefork", &["--grace-ms", "50"]);
    assert_usage_error("prefork", &["--first-byte-ms", "-1"]);
    assert_usage_error("prefork", &["--keepalive-ms", "60001"]);
    assert_usage_error("prefork", &["--head-max-ms", "120001"]);
    assert_usage_error("prefork", &["--min-rate", "1000001"]);
    assert_usage_error("prefork", &["--max-requests", "x"]);
    assert_usage_error("prefork", &["--model", "threads", "--max-requests", "5"]);
    assert_usage_error("prefork", &["--part", "idle"]); // needs --demo
    assert_usage_error("prefork", &["--demo", "--part", "slowloris"]);
    assert_usage_error("prefork", &["--demo", "--idle", "0"]);
    assert_usage_error("prefork", &["--demo", "--idle", "4001"]);
    assert_usage_error("prefork", &["--demo", "--slow", "1001"]);
    assert_usage_error("prefork", &["--demo", "--attack-ms", "499"]);
}

#[test]
fn reuseport_workers_each_have_a_socket_and_all_serve() {
    let mut srv = Server::start(&["--workers", "3", "--reuseport"]);
    let workers = srv.workers_started(3);
    let port = srv.port;
    // Each worker listens on a socket of its own: one no other worker holds.
    let sockets = |p: i32| -> std::collections::BTreeSet<String> {
        std::fs::read_dir(format!("/proc/{p}/fd"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| std::fs::read_link(e.path()).ok())
                    .map(|l| l.display().to_string())
                    .filter(|l| l.starts_with("socket:"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let own = until(Duration::from_secs(5), || {
        let all: Vec<_> = workers.iter().map(|&p| sockets(p)).collect();
        let own = (0..all.len())
            .filter(|&i| {
                all[i]
                    .iter()
                    .any(|s| (0..all.len()).all(|j| j == i || !all[j].contains(s)))
            })
            .count();
        (own == workers.len()).then_some(own)
    });
    assert_eq!(own, Some(3), "every worker has a socket of its own");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let (status, body) = get(port, "/").expect("request");
        assert_eq!(status, 200);
        seen.insert(worker_of(&body));
    }
    assert!(seen.len() > 1, "60 connections all hashed to one worker: {seen:?}");
    assert_eq!(srv.stop(libc::SIGTERM), Some(0));
}
