//! Checks of the zombie exercises (chapter 3).

use super::{exited_cleanly, ignores, ms, reaped_text, run_to_end};
use crate::observer::Observer;
use proclab::{check, observe, Lab};
use std::time::Duration;

/// zombie-handler: five children end at once; none may stay a zombie, each is reaped by
/// the program itself, and SIGCHLD is never ignored (the statuses are wanted).
pub fn handler(lab: &mut Lab, obs: &mut Observer) {
    let pid = obs.spawn(&[]);
    let mut ignored = false;
    let end = obs.until(Duration::from_secs(15), |tl| {
        ignored |= ignores(pid, libc::SIGCHLD) == Some(true);
        tl.get(pid).and_then(|p| p.end)
    });
    let (n, worst, worst_pid, by_parent) = obs.view(|tl| {
        let kids = tl.children_of(pid);
        let worst = kids.iter().max_by_key(|k| k.zombie_ns);
        let by_parent = kids.iter().filter(|k| k.reaped_by(pid)).count();
        let (w, wp) = worst.map_or((0, 0), |k| (k.zombie_ns, k.pid));
        (kids.len(), w, wp, by_parent)
    });
    let worst_ms = ms(worst);
    observe!(
        lab,
        "children",
        "your program ({pid}) forked {n} children; the longest any stayed a zombie \
         (Z in /proc) was {worst_ms} ms (child {worst_pid})",
        pid,
        n,
        worst_ms,
        worst_pid
    );
    check!(lab, "forked", n == 5, "five children are forked (seen: {n})");
    check!(
        lab,
        "no_zombie",
        n > 0 && worst_ms < 1000,
        "no child stays a zombie for a second (expected: each reaped soon after SIGCHLD \
         is unblocked; seen: the longest stayed Z for {worst_ms} ms)"
    );
    check!(
        lab,
        "reaped_by_parent",
        n > 0 && by_parent == n,
        "every child is reaped by your program (seen: {seen})",
        seen = reaped_text(by_parent, n)
    );
    let how = if ignored {
        "SIG_IGN: the kernel discards the statuses"
    } else {
        "not ignored"
    };
    check!(
        lab,
        "statuses_kept",
        !ignored,
        "SIGCHLD is not ignored, so the exit statuses can be collected (seen: {how})"
    );
    exited_cleanly(lab, end);
}

/// zombie-daemon: the daemon (a grandchild) is adopted and in a session of its own; the
/// intermediate child does not stay a zombie and is reaped by the parent.
pub fn daemon(lab: &mut Lab, obs: &mut Observer) {
    let (pid, end) = run_to_end(lab, obs, &[], Duration::from_secs(10));
    let me = obs.me;
    // The daemon is in the session its parent made with setsid: the session id is the
    // parent's pid, even if the parent lived too briefly to be seen.
    let facts = obs.view(|tl| {
        let sid = tl.get(pid).map_or(0, |p| p.sid);
        let all: Vec<_> = tl.procs.values().collect();
        let daemon = all.iter().find(|p| p.sid != sid && p.sid != p.pid)?;
        let child = tl.get(daemon.sid).cloned();
        Some(((*daemon).clone(), child, sid))
    });
    let Some((daemon, child, sid)) = facts else {
        lab.not_observed(
            "daemon_adopted",
            "no daemon was seen: no process below your program in a new session that it \
             does not lead",
        );
    };
    let c = daemon.sid;
    let d = daemon.pid;
    let parents = daemon.ppids.clone();
    observe!(
        lab,
        "daemon",
        "child {c}, daemon {d}: the daemon's parents were {parents:?}, its session {dsid} \
         (your program's: {sid})",
        c,
        d,
        parents,
        dsid = daemon.sid,
        sid
    );
    // The checker forked only your program: any other child of it is an adopted orphan.
    check!(
        lab,
        "daemon_adopted",
        daemon.ppid() == me,
        "the daemon is adopted when its parent exits (seen: its parents {parents:?}; the \
         checker, which adopts orphans, is {me})"
    );
    check!(
        lab,
        "own_session",
        daemon.sid != sid && daemon.sid != d,
        "the daemon is in a new session and does not lead it (seen: session {dsid}, pid \
         {d})",
        dsid = daemon.sid
    );
    // A child never seen lived for less than a sample and was reaped by the parent (a
    // zombie left unreaped would have been seen for the parent's two seconds).
    let z = ms(child.as_ref().map_or(0, |c| c.zombie_ns));
    let reaped = child.as_ref().is_none_or(|c| c.reaped_by(pid));
    check!(
        lab,
        "no_zombie",
        z < 500,
        "the child does not stay a zombie (seen: Z for {z} ms)"
    );
    check!(
        lab,
        "reaped_by_parent",
        reaped,
        "the child {c} is reaped by your program (seen: {by})",
        by = if reaped { "yes" } else { "no: it was left to the checker" }
    );
    exited_cleanly(lab, end);
}
