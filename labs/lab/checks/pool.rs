//! Checks of the pool exercises (chapter 9).

use super::{exited_cleanly, ms, wchans};
use crate::observer::Observer;
use nix::sys::signal::Signal;
use proclab::{check, clock, observe, Lab};
use std::collections::BTreeMap;
use std::time::Duration;

/// pool-retry: a busy worker is killed; it is reaped, exactly one replacement is forked,
/// and the 12 results are printed once each, right.
pub fn retry(lab: &mut Lab, obs: &mut Observer) {
    let pid = obs.spawn(&[]);
    let workers = obs.until(Duration::from_secs(5), |tl| {
        let w: Vec<i32> = tl
            .children_of(pid)
            .iter()
            .filter(|p| p.running())
            .map(|p| p.pid)
            .collect();
        (w.len() >= 3).then_some(w)
    });
    let Some(workers) = workers else {
        lab.not_observed("replaced", "your master did not start three workers");
    };
    // Kill one while it works on a task (it sleeps in it for 200 ms).
    let victim = workers[1];
    let busy = |_: &crate::timeline::Timeline| {
        wchans(victim).iter().any(|w| w.contains("nanosleep")).then_some(())
    };
    let _ = obs.until(Duration::from_secs(2), busy);
    let killed_at = clock::lab_ns();
    obs.signal(victim, Signal::SIGKILL);
    observe!(
        lab,
        "killed",
        "killed worker {victim} (SIGKILL) while it worked",
        victim
    );
    let end = obs.end_of(pid, Duration::from_secs(15));
    let (dead, new) = obs.view(|tl| {
        let dead = tl.get(victim).cloned();
        let kids = tl.children_of(pid);
        let new: Vec<i32> =
            kids.iter().filter(|k| k.born_ns > killed_at).map(|k| k.pid).collect();
        (dead, new)
    });
    let reaped = dead.as_ref().is_some_and(|d| d.reaped_by(pid));
    let z = ms(dead.as_ref().map_or(0, |d| d.zombie_ns));
    check!(
        lab,
        "reaped",
        reaped && z < 1000,
        "the killed worker is reaped by your master (seen: reaped {reaped}, a zombie \
         for {z} ms)"
    );
    let n = new.len();
    check!(
        lab,
        "replaced",
        n == 1,
        "exactly one replacement worker is forked after the kill (seen: {n}: {new:?})"
    );
    let mut seen: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for line in obs.lines() {
        let parsed = line.strip_prefix("task ").and_then(|l| l.split_once(" = "));
        if let Some((i, r)) =
            parsed.and_then(|(i, r)| Some((i.parse().ok()?, r.parse().ok()?)))
        {
            seen.entry(i).or_default().push(r);
        }
    }
    let bad: Vec<String> = (0..12u32)
        .filter(|i| seen.get(i) != Some(&vec![i * 7919 % 1000]))
        .map(|i| {
            format!("task {i}: {:?}", seen.get(&i).cloned().unwrap_or_default())
        })
        .collect();
    check!(
        lab,
        "results",
        bad.is_empty(),
        "all 12 results are printed once each, right (seen wrong or missing: {bad:?})"
    );
    exited_cleanly(lab, end);
}
