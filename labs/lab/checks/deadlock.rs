//! Checks of the deadlock exercises (chapter 7).

use super::{end_or_stuck, end_or_stuck_with, exited_cleanly, wchans, Outcome};
use crate::observer::Observer;
use proclab::{check, observe, Lab};
use std::time::Duration;

/// What a wait for the end turned into: the end, and how the program was seen.
fn finished(lab: &mut Lab, outcome: &Outcome) -> Option<crate::timeline::End> {
    let seen = match outcome {
        Outcome::Ended(e) => format!("it ended: {}", e.status),
        Outcome::Stuck(w) => {
            format!(
                "every thread waited in the kernel and none used the CPU: {w:?}"
            )
        }
        Outcome::Running(w) => format!("still running at the limit: {w:?}"),
    };
    let ok = matches!(outcome, Outcome::Ended(_));
    check!(lab, "finished", ok, "your program finishes by itself (seen: {seen})");
    match outcome {
        Outcome::Ended(e) => Some(*e),
        _ => None,
    }
}

/// deadlock-order: the program finishes; two worker threads ran at once and one was seen
/// waiting for a lock (a futex) while the program made progress.
pub fn order(lab: &mut Lab, obs: &mut Observer) {
    let pid = obs.spawn(&[]);
    let (mut most, mut contended) = (0, 0);
    let main = format!("{pid} ");
    let watch = |_: &crate::timeline::Timeline| {
        let all = wchans(pid);
        let workers: Vec<&String> =
            all.iter().filter(|t| !t.starts_with(&main)).collect();
        most = most.max(workers.len());
        let waiting = workers.iter().filter(|t| t.contains("futex")).count();
        if workers.len() >= 2 && waiting >= 1 && waiting < workers.len() {
            contended += 1; // one waits for a lock while another goes on
        }
    };
    let quiet = Duration::from_millis(1500);
    let outcome =
        end_or_stuck_with(obs, pid, Duration::from_secs(20), quiet, watch);
    let end = finished(lab, &outcome);
    observe!(
        lab,
        "threads",
        "worker threads seen at once: {most}; samples with one waiting for a lock while \
         another went on: {contended}",
        most,
        contended
    );
    check!(
        lab,
        "together",
        most >= 2,
        "two worker threads run at the same time (seen: at most {most})"
    );
    check!(
        lab,
        "contended",
        contended > 0,
        "a thread is seen waiting for a lock the other holds (seen in {contended} samples)"
    );
    exited_cleanly(lab, end);
}

/// deadlock-pipes: the program finishes, and the kernel counted both megabytes.
pub fn pipes(lab: &mut Lab, obs: &mut Observer) {
    let pid = obs.spawn(&[]);
    let outcome = end_or_stuck(
        obs,
        pid,
        Duration::from_secs(20),
        Duration::from_millis(1500),
    );
    let end = finished(lab, &outcome);
    let (r, w) = end.map_or((0, 0), |e| (e.rchar, e.wchar));
    observe!(
        lab,
        "bytes",
        "your program and the child it reaped read {r} bytes and wrote {w}",
        r,
        w
    );
    check!(
        lab,
        "moved",
        r >= 2 << 20 && w >= 2 << 20,
        "both megabytes cross: 2 MiB read and 2 MiB written in all (seen: {r} and {w} bytes)"
    );
    exited_cleanly(lab, end);
}
