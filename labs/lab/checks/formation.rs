//! Checks of the formation exercises (chapter 13).

use super::ms;
use crate::observer::Observer;
use proclab::{check, observe, Lab};
use std::time::Duration;

/// The waits before the 2nd, 3rd and 4th start, in ms: 100, doubled for each start.
const WAITS: [u64; 3] = [100, 200, 400];

/// One life of the crasher, as /proc showed it: pid, first seen, gone (reaped).
struct Life {
    pid: i32,
    born: u64,
    gone: Option<u64>,
    reaped: bool,
    zombie_ms: u64,
}

/// formation-backoff: four lives of the crasher (four pids, children of the manager),
/// each started the doubling wait after the previous one ended, each reaped by the
/// manager; no fifth, and the manager exits 1 soon after the fourth ends.
pub fn backoff(lab: &mut Lab, obs: &mut Observer) {
    let pid = obs.spawn(&[]);
    // Until the manager ends, or it has started far more lives than four (a runaway).
    let _ = obs.until(Duration::from_secs(5), |tl| {
        let ended = tl.get(pid).is_some_and(|p| p.end.is_some());
        (ended || tl.children_of(pid).len() > 8).then_some(())
    });
    let (lives, end) = obs.view(|tl| {
        let mut v: Vec<Life> = tl
            .children_of(pid)
            .iter()
            .map(|p| Life {
                pid: p.pid,
                born: p.born_ns,
                gone: p.gone_ns.or(p.ended_ns()),
                reaped: p.reaped_by(pid),
                zombie_ms: ms(p.zombie_ns),
            })
            .collect();
        v.sort_by_key(|l| l.born);
        (v, tl.get(pid).and_then(|p| p.end))
    });
    let pids: Vec<i32> = lives.iter().map(|l| l.pid).collect();
    // The wait before each restart: from the previous life's end to the new one's start.
    let waits: Vec<i64> = lives
        .windows(2)
        .map(|w| {
            let gone = w[0].gone.unwrap_or(u64::MAX);
            (w[1].born as i64 - gone.min(w[1].born) as i64) / 1_000_000
        })
        .collect();
    observe!(
        lab,
        "lives",
        "your manager {pid} started the crasher {n} times, pids {pids:?}; the waits before each \
         restart: {waits:?} ms",
        pid,
        n = lives.len(),
        pids,
        waits
    );
    check!(
        lab,
        "restarted",
        lives.len() >= 4,
        "the crasher is restarted until it has lived four times, each life a new pid \
         (seen: {n})",
        n = lives.len()
    );
    // A sample can be a tick late at either end: three quarters of the wait, at least.
    let kept = waits.len() >= 3
        && waits.iter().zip(WAITS).all(|(&w, want)| {
            w >= (want * 3 / 4) as i64 && w <= (want + 250) as i64
        });
    check!(
        lab,
        "backoff",
        kept,
        "each restart comes after its wait, doubling: about {WAITS:?} ms (seen: {waits:?})"
    );
    let unreaped: Vec<i32> =
        lives.iter().filter(|l| !l.reaped).map(|l| l.pid).collect();
    let zombie = lives.iter().map(|l| l.zombie_ms).max().unwrap_or(0);
    check!(
        lab,
        "reaped",
        !lives.is_empty() && unreaped.is_empty() && zombie < 100,
        "every life is reaped by the manager at once (seen: not reaped by it: \
         {unreaped:?}; the longest zombie: {zombie} ms)"
    );
    let last = lives.last().and_then(|l| l.gone);
    let after = match (end, last) {
        (Some(e), Some(l)) => Some(ms(e.at_ns.saturating_sub(l))),
        _ => None,
    };
    let how =
        end.map_or("still running after 5 s".to_string(), |e| e.status.to_string());
    check!(
        lab,
        "gave_up",
        lives.len() == 4
            && end.and_then(|e| e.status.code()) == Some(1)
            && after.is_some_and(|a| a < 1000),
        "after the fourth life the manager gives up: no fifth start, and it exits 1 within \
         a second (seen: {n} lives; it {how}{when})",
        n = lives.len(),
        when = after.map_or(String::new(), |a| format!(", {a} ms after the last life"))
    );
}

/// Whether `pid` catches signal `sig` now (a handler: the SigCgt mask of /proc/PID/status).
fn catches(pid: i32, sig: i32) -> bool {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mask = text.lines().find_map(|l| l.strip_prefix("SigCgt:"));
    let mask = mask.and_then(|m| u64::from_str_radix(m.trim(), 16).ok());
    mask.is_some_and(|m| m & (1 << (sig - 1)) != 0)
}

/// formation-stop: once the manager and `web` catch SIGTERM and `stubborn` ignores it,
/// SIGTERM to the manager: `web` is gone within 300 ms, `stubborn` lives 400 ms more
/// (the grace period) and is gone within 1.5 s, both reaped at once by the manager,
/// which exits 0 within 2 s.
pub fn stop(lab: &mut Lab, obs: &mut Observer) {
    let pid = obs.spawn(&[]);
    let term = libc::SIGTERM;
    // The two processes: the one that catches SIGTERM, the one that ignores it.
    let ready = obs.until(Duration::from_secs(5), |tl| {
        let kids: Vec<i32> = tl
            .children_of(pid)
            .iter()
            .filter(|p| p.running())
            .map(|p| p.pid)
            .collect();
        let web = kids.iter().copied().find(|&k| catches(k, term))?;
        let stubborn = kids
            .iter()
            .copied()
            .find(|&k| super::ignores(k, term) == Some(true))?;
        catches(pid, term).then_some((web, stubborn))
    });
    let Some((web, stubborn)) = ready else {
        lab.not_observed(
            "stopped",
            "your manager did not start, within 5 s, a process that catches SIGTERM and \
             one that ignores it, while catching SIGTERM itself",
        );
    };
    obs.signal(pid, nix::sys::signal::Signal::SIGTERM);
    let sent = proclab::clock::lab_ns();
    let end = obs.end_of(pid, Duration::from_secs(2));
    let _ = obs.until(Duration::from_millis(200), |tl| {
        [web, stubborn]
            .iter()
            .all(|&k| tl.get(k).is_some_and(|p| !p.running()))
            .then_some(())
    });
    let (gone, reaped, zombie) = obs.view(|tl| {
        let after = |k: i32| {
            let p = tl.get(k)?;
            let at = p.gone_ns.or(p.ended_ns())?;
            Some(ms(at.saturating_sub(sent)))
        };
        let both = [web, stubborn];
        let reaped =
            both.iter().all(|&k| tl.get(k).is_some_and(|p| p.reaped_by(pid)));
        let z =
            both.iter().filter_map(|&k| tl.get(k)).map(|p| ms(p.zombie_ns)).max();
        ([after(web), after(stubborn)], reaped, z.unwrap_or(0))
    });
    let text = |g: Option<u64>| {
        g.map_or("still running".to_string(), |g| format!("gone after {g} ms"))
    };
    observe!(
        lab,
        "sigterm",
        "SIGTERM to your manager {pid}: web {web} {w}, stubborn {stubborn} (which ignores \
         SIGTERM) {s}",
        pid,
        web,
        stubborn,
        w = text(gone[0]),
        s = text(gone[1])
    );
    check!(
        lab,
        "stopped",
        gone[0].is_some_and(|g| g <= 300),
        "web, which stops on SIGTERM, is gone within 300 ms (seen: {w})",
        w = text(gone[0])
    );
    check!(
        lab,
        "grace",
        gone[1].is_none_or(|g| g >= 400),
        "stubborn is given its grace period: it lives on for 400 ms at least (seen: {s})",
        s = text(gone[1])
    );
    check!(
        lab,
        "escalated",
        gone[1].is_some_and(|g| g <= 1500),
        "after the grace period stubborn is killed: gone within 1.5 s (seen: {s})",
        s = text(gone[1])
    );
    check!(
        lab,
        "reaped",
        reaped && zombie < 100,
        "both are reaped by the manager as they end (seen: reaped by it: {reaped}; the \
         longest zombie: {zombie} ms)"
    );
    let how =
        end.map_or("still running 2 s later".to_string(), |e| e.status.to_string());
    check!(
        lab,
        "exit_0",
        end.and_then(|e| e.status.code()) == Some(0),
        "the manager exits 0 within 2 s (seen: {how})"
    );
}
