//! Checks of the I/O models exercises (chapter 15).

use super::prefork::{ask, listener};
use crate::observer::Observer;
use proclab::{check, observe, Lab};
use std::io::ErrorKind::{TimedOut, WouldBlock};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How many clients come at once, behind the stalled one.
const CLIENTS: usize = 20;

/// io-event-loop: a client sends half a line and stalls; 20 clients at once are all
/// answered within 2 s; the stalled one is answered when it finishes its line; the
/// server had one thread and no child throughout (/proc).
pub fn event_loop(lab: &mut Lab, obs: &mut Observer) {
    let pid = obs.spawn(&[]);
    let Some((inode, port)) = obs.until(Duration::from_secs(5), |_| listener(pid))
    else {
        lab.not_observed("answered", "your server holds no listening TCP socket");
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let stalled = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .and_then(|mut s| s.write_all(b"slow").map(|_| s));
    let Ok(mut stalled) = stalled else {
        lab.not_observed(
            "answered",
            "the checker could not connect to your server",
        );
    };
    // The server holds the stalled connection (a second socket) once it has accepted it.
    let accepted = obs
        .until(Duration::from_secs(2), |_| {
            (super::prefork::sockets(pid).len() >= 2).then_some(())
        })
        .is_some();
    observe!(
        lab,
        "stalled",
        "your server {pid} listens on port {port} (socket {inode}); a client sent \"slow\" \
         without its newline and waits{how}",
        pid,
        port,
        inode,
        how = if accepted { ", accepted" } else { " (not seen accepted)" }
    );
    let start = Instant::now();
    let askers: Vec<_> = (0..CLIENTS)
        .map(|k| {
            std::thread::spawn(move || {
                let r = ask(
                    port,
                    format!("client {k}\n").as_bytes(),
                    Duration::from_secs(2),
                );
                (r, start.elapsed())
            })
        })
        .collect();
    let mut answered = 0;
    let mut slowest = Duration::ZERO;
    let mut failures = Vec::new();
    for (k, a) in askers.into_iter().enumerate() {
        match a.join() {
            Ok((Ok(r), took)) if r == format!("hello client {k}") => {
                answered += 1;
                slowest = slowest.max(took);
            }
            Ok((Ok(r), _)) => failures.push(format!("client {k}: {r:?}")),
            Ok((Err(e), _)) => failures.push(format!("client {k}: {e}")),
            Err(_) => {
                failures.push(format!("client {k}: the checker's thread panicked"))
            }
        }
    }
    failures.truncate(3);
    observe!(
        lab,
        "clients",
        "{CLIENTS} clients at once while it waited: {answered} answered, the slowest after \
         {slowest_ms} ms; failures (the first 3): {failures:?}",
        answered,
        slowest_ms = slowest.as_millis() as u64,
        failures
    );
    check!(
        lab,
        "answered",
        answered == CLIENTS && slowest < Duration::from_secs(2),
        "all {CLIENTS} clients are answered within 2 s, although one client stalls (seen: \
         {answered})"
    );
    let mut reply = String::new();
    let finished = stalled
        .set_read_timeout(Some(Duration::from_secs(2)))
        .and_then(|_| stalled.write_all(b"er\n"))
        .and_then(|_| stalled.read_to_string(&mut reply));
    let seen = match finished {
        Ok(_) if reply.is_empty() => {
            "the connection closed without an answer".into()
        }
        Ok(_) => format!("{:?}", reply.trim()),
        Err(e) => e.to_string(),
    };
    check!(
        lab,
        "slow_client",
        reply.trim() == "hello slower",
        "the stalled client, once it sends the rest of its line, is answered \"hello \
         slower\" (seen: {seen})"
    );
    one_thread(lab, obs, pid);
}

/// Check that `pid` had one thread and no child, all along (/proc, every sample).
fn one_thread(lab: &mut Lab, obs: &Observer, pid: i32) {
    let (threads, kids) = obs.view(|tl| {
        let t = tl.get(pid).map_or(0, |p| p.threads_max);
        (t, tl.children_of(pid).len())
    });
    check!(
        lab,
        "one_thread",
        threads == 1 && kids == 0,
        "your server did it all in one thread, with no other thread and no child (seen in \
         /proc: at most {threads} threads, {kids} children)"
    );
}

/// io-timer: 10 requests at once, waiting 100, 200, ... 1000 ms: each is answered no
/// sooner than its wait and at most 250 ms later, by a server of one thread.
pub fn timer(lab: &mut Lab, obs: &mut Observer) {
    let pid = obs.spawn(&[]);
    let Some((inode, port)) = obs.until(Duration::from_secs(5), |_| listener(pid))
    else {
        lab.not_observed("on_time", "your server holds no listening TCP socket");
    };
    observe!(
        lab,
        "server",
        "your server {pid} listens on port {port} (socket {inode}); 10 requests at once, \
         waiting 100 to 1000 ms",
        pid,
        port,
        inode
    );
    let askers: Vec<_> = (1..=10u64)
        .map(|k| {
            std::thread::spawn(move || {
                let wait = k * 100;
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                let mut c =
                    TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                        .map_err(|e| e.to_string())?;
                let limit = Duration::from_millis(wait + 1500);
                c.set_read_timeout(Some(limit)).map_err(|e| e.to_string())?;
                c.write_all(format!("wait {wait}\n").as_bytes())
                    .map_err(|e| e.to_string())?;
                let sent = Instant::now();
                let mut reply = String::new();
                let r = c.read_to_string(&mut reply);
                let took = sent.elapsed().as_millis() as u64;
                match r {
                    Ok(_) if reply.trim() == format!("waited {wait}") => Ok(took),
                    Ok(_) => Err(format!("{:?} after {took} ms", reply.trim())),
                    Err(e) if matches!(e.kind(), WouldBlock | TimedOut) => {
                        Err(format!("no answer after {took} ms"))
                    }
                    Err(e) => Err(format!("{e} after {took} ms")),
                }
            })
        })
        .collect();
    let results: Vec<Result<u64, String>> = askers
        .into_iter()
        .map(|a| {
            a.join().unwrap_or_else(|_| Err("the checker's thread panicked".into()))
        })
        .collect();
    let seen: Vec<String> = results
        .iter()
        .map(|r| match r {
            Ok(ms) => format!("{ms}"),
            Err(e) => e.clone(),
        })
        .collect();
    let late: Vec<u64> = results
        .iter()
        .zip(1..=10u64)
        .filter(|(r, k)| {
            !r.as_ref().is_ok_and(|&t| t >= k * 100 && t <= k * 100 + 250)
        })
        .map(|(_, k)| k * 100)
        .collect();
    observe!(
        lab,
        "answers",
        "the answers came after (ms, in the order 100, 200, ... 1000): {seen:?}",
        seen
    );
    check!(
        lab,
        "on_time",
        late.is_empty(),
        "each request is answered after its wait, at most 250 ms late (seen: off time: \
         the requests of {late:?} ms)"
    );
    one_thread(lab, obs, pid);
}
