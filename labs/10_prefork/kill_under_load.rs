//! Demo section 3, one worker killed with SIGTERM and one with SIGKILL, under load:
//! `waitpid` tells the master how each died, it forks replacements, and every request
//! started after that succeeds, because the connections wait in the socket's queue.

use crate::client::{ok, started, waiting_on_socket, worker_of, Load, Log, Resp};
use crate::master::{lab_now, Master, YOUNG};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpid, Pid};
use proclab::{check, observe, procfacts, Deadline, Lab};
use std::time::{Duration, Instant};

pub fn run(lab: &mut Lab, m: &mut Master) {
    lab.section("3. Kill one worker with SIGTERM and one with SIGKILL, under load");
    let load = Load::start(m.cfg.port);
    load.wait_done(20);
    // Workers younger than YOUNG that die count as a crash loop; these are not young.
    procfacts::poll_until(Duration::from_secs(5), || {
        m.workers.iter().all(|w| lab_now() - w.born > YOUNG).then_some(())
    });
    let old = m.pids();
    // ANCHOR: kill
    let (gentle, brutal) = (old[0], old[1]);
    for (pid, sig) in [(gentle, Signal::SIGTERM), (brutal, Signal::SIGKILL)] {
        if let Err(e) = kill(pid, sig) {
            // ESRCH: the worker was already gone, so there is no death to watch.
            lab.not_observed("replaced", format_args!("kill({pid}, {sig}): {e}"));
        }
        let (pid, sent) = (pid.as_raw(), sig.as_str());
        observe!(lab, "kill", "the lab sent {sent} to worker {pid}", pid, sent);
    }
    let killed_at = Instant::now();
    let deadline = Deadline::after(Duration::from_secs(10));
    while m.deaths.len() < 2 && !deadline.expired() {
        m.tick(lab, Duration::from_millis(100)); // SIGCHLD, waitpid, fork
    }
    let dead_at = Instant::now(); // dead when waitpid says so, not kill
    while m.active() < m.want && m.replacing() && !deadline.expired() {
        m.tick(lab, Duration::from_millis(100)); // a back-off may delay one
    }
    // ANCHOR_END: kill
    load.wait_done(load.done() + 30);
    let log = load.finish();
    let accepting = back_in_accept(lab, m);
    lab.show_tree(getpid());
    let new: Vec<Pid> = m.pids().into_iter().filter(|p| !old.contains(p)).collect();
    under_load(lab, &log, killed_at, dead_at, &new);
    let died = |pid: Pid| m.deaths.iter().find(|d| d.pid == pid).map(|d| d.status);
    let gentle_ok = died(gentle).is_some_and(|s| s.code() == Some(0));
    let brutal_ok =
        died(brutal).is_some_and(|s| s.signal() == Some(Signal::SIGKILL));
    let alive = m.pids().iter().filter(|p| procfacts::exists(p.as_raw())).count();
    let forked = new.len();
    check!(
        lab,
        "replaced",
        gentle_ok
            && brutal_ok
            && forked == 2
            && alive == m.want
            && accepting == m.want,
        "waitpid reported the SIGTERM-ed worker exiting 0 and the other killed by \
         SIGKILL; {forked} replacements forked, {alive} workers alive, {accepting} \
         back in accept4",
        forked,
        alive,
        accepting
    );
    let after = started(&log, dead_at..);
    let (after_ok, after_n) = (after.iter().filter(|r| ok(r)).count(), after.len());
    check!(
        lab,
        "no_failure_once_reaped",
        after_n > 0 && after_ok == after_n,
        "{after_ok} of {after_n} requests started after waitpid reported both \
         deaths succeeded",
        after_ok,
        after_n
    );

    if m.stop_by.is_some() {
        // Someone sent the master SIGQUIT: stop here, honestly.
        while !m.tick(lab, Duration::from_millis(200)) {}
        m.check_stopped(lab);
        lab.not_observed(
            "not_interrupted",
            "the master was told to stop (SIGQUIT)",
        );
    }
}

/// Wait (at most 5 s) until every worker, the new ones too, sleeps in accept4 again
/// (/proc/PID/syscall), so that the next section starts from a full set of idle
/// workers, not from one still starting up; how many were seen there.
fn back_in_accept(lab: &mut Lab, m: &Master) -> usize {
    let pids = m.pids();
    let count = || pids.iter().filter(|&&p| waiting_on_socket(p)).count();
    let accepting = procfacts::poll_until(Duration::from_secs(5), || {
        (count() == pids.len()).then_some(pids.len())
    })
    .unwrap_or_else(count);
    let (n, workers) =
        (pids.len(), pids.iter().map(|p| p.as_raw()).collect::<Vec<_>>());
    observe!(
        lab,
        "back_in_accept",
        "{accepting} of {n} workers sleep in accept4 again (/proc/PID/syscall)",
        accepting,
        n,
        workers
    );
    accepting
}

/// What the load saw before the kills, between the kills and waitpid's report of both
/// deaths, and after it (and how much of that the `new` workers served).
fn under_load(
    lab: &mut Lab,
    log: &Log,
    killed_at: Instant,
    dead_at: Instant,
    new: &[Pid],
) {
    let failed = |rs: &[&Resp]| rs.iter().filter(|r| !ok(r)).count();
    let failed_before_kill = failed(&started(log, ..killed_at));
    let window = started(log, killed_at..dead_at);
    let (failed_in_window, in_window) = (failed(&window), window.len());
    let after = started(log, dead_at..);
    let after_death = after.len();
    let after_death_ok = after_death - failed(&after);
    let new_workers: Vec<i32> = new.iter().map(|p| p.as_raw()).collect();
    let served_by_new = after
        .iter()
        .filter_map(|r| r.as_ref().ok().and_then(|(_, b)| worker_of(b)))
        .filter(|p| new_workers.contains(p))
        .count();
    let first_error = log.iter().find_map(|(_, r)| r.as_ref().err().cloned());
    let requests = log.len();
    observe!(lab, "under_load",
        "{requests} requests: {failed_before_kill} failed of those started before \
         the kills, {failed_in_window} of the {in_window} started between the kills \
         and waitpid's report, and {after_death_ok} of {after_death} started after \
         it succeeded ({served_by_new} served by the new workers)",
        requests, failed_before_kill, in_window, failed_in_window, after_death,
        after_death_ok, new_workers, served_by_new, first_error);
}
