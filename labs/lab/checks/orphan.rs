//! Checks of the orphan exercises (chapter 4).

use super::{exited_cleanly, run_to_end};
use crate::observer::Observer;
use proclab::{check, observe, Lab};
use std::time::Duration;

/// orphan-subreaper: the orphaned grandchild is re-parented to the program, which reaps it.
pub fn subreaper(lab: &mut Lab, obs: &mut Observer) {
    let (pid, end) = run_to_end(lab, obs, &[], Duration::from_secs(10));
    let me = obs.me;
    // The child leads a process group of its own, which the grandchild inherits: its
    // group id is its first parent's pid, even if that parent was never seen.
    let orphan = obs.view(|tl| {
        let all: Vec<_> = tl.procs.values().collect();
        let g = all.iter().find(|p| p.pgid != p.pid && p.pgid != pid)?;
        Some((*g).clone())
    });
    let Some(g) = orphan else {
        lab.not_observed("adopted", "no grandchild was seen below your program");
    };
    let parents = g.ppids.clone();
    let who = if g.ppid() == me { " (the checker)" } else { "" };
    observe!(
        lab,
        "orphan",
        "the grandchild {gpid} had the parents {parents:?}{who}",
        gpid = g.pid,
        parents
    );
    check!(
        lab,
        "adopted",
        parents.contains(&pid),
        "the orphan is re-parented to your program {pid} (seen: parents {parents:?}{who})"
    );
    let end_of_orphan = g.end.map(|e| e.status.to_string());
    let how = end_of_orphan.unwrap_or_else(|| "by your program".into());
    check!(
        lab,
        "reaped",
        g.reaped_by(pid),
        "your program reaps the orphan (seen: reaped {by})",
        by = if g.reaped_by(pid) {
            how
        } else {
            format!("by the checker, which saw: {how}")
        }
    );
    exited_cleanly(lab, end);
}
