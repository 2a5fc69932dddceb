//! Checks of the prefork exercises (chapter 10).

use super::wchans;
use crate::observer::Observer;
use crate::timeline::Timeline;
use nix::sys::signal::Signal;
use proclab::{check, observe, Lab};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The socket inodes `pid` holds (`socket:[N]` in /proc/PID/fd).
pub fn sockets(pid: i32) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let links = dir.flatten().filter_map(|e| std::fs::read_link(e.path()).ok());
    let inode = |l: std::path::PathBuf| {
        let l = l.display().to_string();
        l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
    };
    links.filter_map(inode).collect()
}

/// The listening TCP socket of `pid`, from /proc/net/tcp: (inode, port).
pub fn listener(pid: i32) -> Option<(u64, u16)> {
    let mine = sockets(pid);
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let inode: u64 = f.get(9)?.parse().ok()?;
        let port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
        (f.get(3) == Some(&"0A") && mine.contains(&inode)).then_some((inode, port))
    })
}

/// The running children of `master` that hold the socket `inode`.
fn holders(tl: &Timeline, master: i32, inode: u64) -> Vec<i32> {
    let kids = tl.children_of(master).into_iter().filter(|p| p.running());
    kids.map(|p| p.pid).filter(|&k| sockets(k).contains(&inode)).collect()
}

/// Send `msg` to 127.0.0.1:`port` and read the reply until the server closes (bounded).
pub fn ask(port: u16, msg: &[u8], wait: Duration) -> Result<String, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    c.set_read_timeout(Some(wait)).map_err(|e| e.to_string())?;
    c.write_all(msg).map_err(|e| e.to_string())?;
    let mut reply = String::new();
    c.read_to_string(&mut reply).map_err(|e| e.to_string())?;
    Ok(reply.trim().to_string())
}

/// The master's socket and its first `n` workers, or the verdict says why not.
fn pool(lab: &mut Lab, obs: &Observer, pid: i32, n: usize) -> (u64, u16, Vec<i32>) {
    let Some((inode, port)) = obs.until(Duration::from_secs(5), |_| listener(pid))
    else {
        lab.not_observed(
            "workers_found",
            "your master holds no listening TCP socket",
        );
    };
    let workers = obs.until(Duration::from_secs(5), |tl| {
        let h = holders(tl, pid, inode);
        (h.len() >= n).then_some(h)
    });
    let Some(workers) = workers else {
        lab.not_observed(
            "workers_found",
            format_args!("fewer than {n} children of your master hold its socket"),
        );
    };
    observe!(lab, "pool", "your master {pid} listens on port {port} (socket {inode}), held by workers {workers:?}", pid, port, inode, workers);
    (inode, port, workers)
}

/// Requests answered by a worker that holds the socket: (answered, failures).
fn requests(
    obs: &Observer,
    pid: i32,
    inode: u64,
    port: u16,
    n: usize,
) -> (usize, Vec<String>) {
    let mut bad = Vec::new();
    for _ in 0..n {
        let now = obs.view(|tl| holders(tl, pid, inode));
        match ask(port, b"", Duration::from_secs(2)) {
            Ok(r) => {
                let from = r
                    .strip_prefix("hello from ")
                    .and_then(|p| p.parse::<i32>().ok());
                if !from.is_some_and(|p| {
                    now.contains(&p)
                        || obs.view(|tl| holders(tl, pid, inode)).contains(&p)
                }) {
                    bad.push(format!(
                        "{r:?} (not from a worker that holds the socket)"
                    ));
                }
            }
            Err(e) => bad.push(e),
        }
    }
    (n - bad.len(), bad)
}

/// prefork-respawn: after each kill -9, three workers hold the socket again within 1.5 s;
/// every dead worker is reaped; every request is answered by a socket holder.
pub fn respawn(lab: &mut Lab, obs: &mut Observer) {
    let pid = obs.spawn(&[]);
    let (inode, port, workers) = pool(lab, obs, pid, 3);
    check!(
        lab,
        "workers_found",
        workers.len() == 3,
        "three workers hold the listening socket (seen: {workers:?})"
    );
    let (ok, bad) = requests(obs, pid, inode, port, 5);
    let mut killed = Vec::new();
    let mut restored = Vec::new();
    for round in [1usize, 2] {
        let now = obs.view(|tl| holders(tl, pid, inode));
        let victims: Vec<i32> = now.iter().take(round).copied().collect();
        for &v in &victims {
            obs.signal(v, Signal::SIGKILL);
        }
        killed.extend(&victims);
        let back = obs.until(Duration::from_millis(1500), |tl| {
            let h = holders(tl, pid, inode);
            (h.len() >= 3 && !h.iter().any(|p| victims.contains(p))).then_some(h)
        });
        let seen =
            back.clone().unwrap_or_else(|| obs.view(|tl| holders(tl, pid, inode)));
        observe!(lab, "respawn", "killed {victims:?} (SIGKILL); 1.5 s later the socket is held by {seen:?}", victims, seen);
        restored.push(back.is_some());
    }
    check!(lab, "restored", restored.iter().all(|&r| r), "three workers hold the socket again within 1.5 s of each kill (seen: {restored:?})");
    let (after, bad_after) = requests(obs, pid, inode, port, 20);
    let reaped = obs.view(|tl| {
        killed
            .iter()
            .filter(|&&k| tl.get(k).is_some_and(|p| p.reaped_by(pid)))
            .count()
    });
    check!(
        lab,
        "reaped",
        reaped == killed.len(),
        "every killed worker is reaped by the master (seen: {reaped} of {n})",
        n = killed.len()
    );
    let failures: Vec<String> = bad.into_iter().chain(bad_after).collect();
    check!(
        lab,
        "answered",
        failures.is_empty(),
        "every request is answered by a worker holding the socket (seen: {total} of 25; \
         failures: {failures:?})",
        total = ok + after
    );
}

/// prefork-graceful: SIGTERM to the master while a worker serves a request: the reply
/// arrives, every worker ends and is reaped by the master, which exits 0.
pub fn graceful(lab: &mut Lab, obs: &mut Observer) {
    let pid = obs.spawn(&[]);
    let (_, port, workers) = pool(lab, obs, pid, 2);
    let client =
        std::thread::spawn(move || ask(port, b"work\n", Duration::from_secs(4)));
    let busy = obs.until(Duration::from_secs(2), |_| {
        workers
            .iter()
            .copied()
            .find(|&w| wchans(w).iter().any(|t| t.contains("nanosleep")))
    });
    let on = busy.map_or("no worker was seen working".into(), |w| {
        format!("worker {w} works on it")
    });
    obs.signal(pid, Signal::SIGTERM);
    observe!(
        lab,
        "sigterm",
        "sent a request, then SIGTERM to your master while {on}",
        on
    );
    let reply = client.join().unwrap_or_else(|_| Err("the client panicked".into()));
    let seen = match &reply {
        Ok(r) if r.is_empty() => {
            "the connection closed without a reply".to_string()
        }
        Ok(r) => format!("{r:?}"),
        Err(e) => e.clone(),
    };
    check!(
        lab,
        "reply",
        reply.as_deref() == Ok("done"),
        "the request in hand is answered \"done\" (seen: {seen})"
    );
    let end = obs.end_of(pid, Duration::from_secs(2));
    let stopped = obs.view(|tl| {
        workers
            .iter()
            .filter(|&&w| tl.get(w).is_some_and(|p| p.reaped_by(pid)))
            .count()
    });
    check!(
        lab,
        "workers_stopped",
        stopped == workers.len(),
        "every worker ends and is reaped by the master (seen: {stopped} of {n})",
        n = workers.len()
    );
    let how =
        end.map_or("still running 2 s later".to_string(), |e| e.status.to_string());
    check!(
        lab,
        "master_exit_0",
        end.and_then(|e| e.status.code()) == Some(0),
        "the master exits 0 within 2 s (seen: {how})"
    );
}
