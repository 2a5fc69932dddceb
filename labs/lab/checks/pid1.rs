//! Checks of the PID 1 exercises (chapter 14).

use super::ms;
use crate::observer::Observer;
use nix::sys::signal::Signal;
use proclab::{check, clock, observe, Lab};
use std::time::Duration;

/// pid1-init: a second after the start (the app's orphan has ended by then), SIGTERM to
/// the init: the app ends within 2 s, no process stays a zombie, the init exits 143.
pub fn init(lab: &mut Lab, obs: &mut Observer) {
    let pid = obs.spawn(&[]);
    let app = obs.until(Duration::from_secs(5), |tl| {
        tl.children_of(pid).iter().find(|p| p.running()).map(|p| p.pid)
    });
    let Some(app) = app else {
        lab.not_observed("forwarded", "your init started no app");
    };
    // The schedule the exercise states: SIGTERM once the init has run for a second.
    let _ = obs.until(Duration::from_secs(5), |tl| {
        let born = tl.get(pid).map_or(0, |p| p.born_ns);
        (clock::lab_ns() > born + 1_200_000_000).then_some(())
    });
    obs.signal(pid, Signal::SIGTERM);
    let sent = clock::lab_ns();
    let app_end = obs
        .until(Duration::from_secs(2), |tl| tl.get(app).and_then(|p| p.ended_ns()));
    let end = obs.end_of(pid, Duration::from_secs(2));
    let (worst, worst_pid) = obs.view(|tl| {
        let w = tl.procs.values().max_by_key(|p| p.zombie_ns);
        w.map_or((0, 0), |p| (ms(p.zombie_ns), p.pid))
    });
    let after = app_end.map(|t| ms(t.saturating_sub(sent)));
    observe!(
        lab,
        "sigterm",
        "SIGTERM to your init {pid}; the app {app} ended {when}; the longest zombie was \
         {worst_pid}, for {worst} ms",
        pid,
        app,
        when = after.map_or("not within 2 s".to_string(), |a| format!("{a} ms later")),
        worst_pid,
        worst
    );
    check!(
        lab,
        "forwarded",
        after.is_some(),
        "the app ends within 2 s of the SIGTERM sent to the init (seen: {seen})",
        seen = after.map_or("still running".to_string(), |a| format!("{a} ms"))
    );
    check!(
        lab,
        "no_zombie",
        worst < 500,
        "no process stays a zombie: the init reaps the orphans it adopts (seen: {worst_pid} \
         was Z for {worst} ms)"
    );
    let how = end.map_or("still running".to_string(), |e| e.status.to_string());
    check!(
        lab,
        "exit_143",
        end.and_then(|e| e.status.code()) == Some(143),
        "the init exits with the app's fate, 128 + 15 = 143 (seen: {how})"
    );
}
