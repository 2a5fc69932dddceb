//! Checks of the parent-death exercises (chapter 11).

use super::{exited_cleanly, ms, run_to_end};
use crate::observer::Observer;
use nix::sys::signal::Signal;
use proclab::{check, clock, observe, Lab};
use std::time::Duration;

/// Kill the parent `pid` with SIGKILL once `ready` says so; then how many of its children
/// still run after `grace`.
fn kill_parent(
    lab: &mut Lab,
    obs: &mut Observer,
    pid: i32,
    ready: impl Fn(&[(i32, u64)]) -> bool,
    grace: Duration,
) -> (Vec<i32>, Vec<i32>) {
    let kids = obs.until(Duration::from_secs(5), |tl| {
        let now = clock::lab_ns();
        let k: Vec<(i32, u64)> = tl
            .children_of(pid)
            .iter()
            .filter(|p| p.running())
            .map(|p| (p.pid, now - p.born_ns))
            .collect();
        (k.len() >= 3 && ready(&k)).then_some(k)
    });
    let Some(kids) = kids else {
        lab.not_observed(
            "die_with_parent",
            "your program did not start three children",
        );
    };
    obs.signal(pid, Signal::SIGKILL);
    let ages: Vec<u64> = kids.iter().map(|k| ms(k.1)).collect();
    let kids: Vec<i32> = kids.iter().map(|k| k.0).collect();
    let gone = |tl: &crate::timeline::Timeline| {
        kids.iter().all(|k| tl.get(*k).is_none_or(|p| !p.running())).then_some(())
    };
    let _ = obs.until(grace, gone);
    let alive: Vec<i32> = obs.view(|tl| {
        kids.iter()
            .copied()
            .filter(|k| tl.get(*k).is_some_and(|p| p.running()))
            .collect()
    });
    observe!(
        lab,
        "killed",
        "killed the parent {pid} (SIGKILL) when its children {kids:?} were {ages:?} ms \
         old; {grace_ms} ms later still running: {alive:?}",
        pid,
        kids,
        ages,
        grace_ms = grace.as_millis() as u64,
        alive
    );
    (kids, alive)
}

/// pdeathsig: no child outlives its SIGKILLed parent by a second, whether the parent dies
/// after the children are ready or while they get ready.
pub fn pdeathsig(lab: &mut Lab, obs: &mut Observer) {
    lab.section("pdeathsig 1: SIGKILL to the parent once its children are ready");
    let pid = obs.spawn(&[]);
    let ready = |k: &[(i32, u64)]| k.iter().all(|&(_, age)| age > 700_000_000);
    let (_, alive) = kill_parent(lab, obs, pid, ready, Duration::from_secs(1));
    check!(
        lab,
        "die_with_parent",
        alive.is_empty(),
        "no child outlives its parent by a second (seen still running: {alive:?})"
    );
    lab.section("pdeathsig 2: SIGKILL to the parent while its children get ready");
    let pid = obs.spawn(&[]);
    let (_, alive) =
        kill_parent(lab, obs, pid, |_| true, Duration::from_millis(1300));
    check!(
        lab,
        "die_even_if_early",
        alive.is_empty(),
        "a child whose parent died before it asked for the signal leaves too, by 1.3 s \
         (seen still running: {alive:?})"
    );
}

/// pgroup-stop: the server and its workers, in a group of their own, end together; the
/// supervisor exits 0 by itself.
pub fn pgroup(lab: &mut Lab, obs: &mut Observer) {
    let (pid, end) = run_to_end(lab, obs, &[], Duration::from_secs(10));
    let family = obs.view(|tl| {
        let server = tl.children_of(pid).first().map(|s| (*s).clone())?;
        let workers: Vec<_> =
            tl.children_of(server.pid).into_iter().cloned().collect();
        Some((server, workers, tl.get(pid).map_or(0, |p| p.pgid)))
    });
    let Some((server, workers, pgid)) = family else {
        lab.not_observed("all_stopped", "your supervisor started no server");
    };
    let w: Vec<i32> = workers.iter().map(|w| w.pid).collect();
    let groups: Vec<i32> = workers.iter().map(|w| w.pgid).collect();
    observe!(
        lab,
        "family",
        "server {server_pid} in group {server_group}, workers {w:?} in groups {groups:?}; \
         the supervisor's group is {pgid}",
        server_pid = server.pid,
        server_group = server.pgid,
        w,
        groups,
        pgid
    );
    let own = server.pgid == server.pid && server.pgid != pgid;
    check!(
        lab,
        "own_group",
        own && groups.iter().all(|&g| g == server.pid),
        "the server leads a group of its own, and its workers are in it"
    );
    let stopped_at = server.ended_ns().unwrap_or(u64::MAX);
    let by = stopped_at.saturating_add(1_000_000_000);
    let late = |tl: &crate::timeline::Timeline| {
        let done = w
            .iter()
            .all(|p| tl.get(*p).and_then(|p| p.ended_ns()).is_some_and(|t| t < by));
        done.then_some(())
    };
    let together = server.ended_ns().is_some()
        && workers.len() == 2
        && obs.until(Duration::from_millis(1000), late).is_some();
    let alive: Vec<i32> = obs.view(|tl| {
        w.iter()
            .copied()
            .filter(|p| tl.get(*p).is_some_and(|p| p.running()))
            .collect()
    });
    check!(
        lab,
        "all_stopped",
        together,
        "the server and both workers end within a second of each other (seen still \
         running: {alive:?})"
    );
    let how = end.map_or("it did not end".to_string(), |e| e.status.to_string());
    check!(
        lab,
        "supervisor_survives",
        end.and_then(|e| e.status.code()) == Some(0),
        "the supervisor is not hit by its own signal and exits 0 (seen: {how})"
    );
    let _ = exited_cleanly;
}
