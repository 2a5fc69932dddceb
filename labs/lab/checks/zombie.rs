//! Checks of the zombie exercises (chapter 3).

use super::{exited_cleanly, ignores, ms};
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
         is unblocked; seen: one stayed Z for {worst_ms} ms)"
    );
    check!(
        lab,
        "reaped_by_parent",
        n > 0 && by_parent == n,
        "every child is reaped by your program (seen: {by_parent} of {n}; the rest were \
         still zombies when it ended, and the checker, which adopts orphans, reaped them)"
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
