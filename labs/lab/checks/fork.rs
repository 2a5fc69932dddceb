//! Checks of the fork exercises (chapter 1).

use super::{exited_cleanly, most_at_once, reaped_text, run_to_end};
use crate::observer::Observer;
use proclab::{check, observe, Lab};
use std::time::Duration;

/// fork-wait-all: four children alive at once, each reaped by the parent.
pub fn wait_all(lab: &mut Lab, obs: &mut Observer) {
    let (pid, end) = run_to_end(lab, obs, &[], Duration::from_secs(10));
    let (n, together, reaped) = obs.view(|tl| {
        let kids = tl.children_of(pid);
        let reaped = kids.iter().filter(|k| k.reaped_by(pid)).count();
        (kids.len(), most_at_once(&kids), reaped)
    });
    observe!(lab, "children", "your program ({pid}) forked {n} children", pid, n);
    check!(lab, "forked", n == 4, "four children are forked (seen: {n})");
    check!(
        lab,
        "together",
        together == 4,
        "the four children are alive at the same time (seen: at most {together} at once)"
    );
    check!(
        lab,
        "reaped_by_parent",
        n > 0 && reaped == n,
        "every child is reaped by your program (seen: {seen})",
        seen = reaped_text(reaped, n)
    );
    exited_cleanly(lab, end);
}

/// Primes below `n`, by a sieve (the checker's own answer).
fn primes_below(n: usize) -> usize {
    let mut sieve = vec![true; n];
    let mut count = 0;
    for k in 2..n {
        if sieve[k] {
            count += 1;
            sieve.iter_mut().skip(k * k).step_by(k).for_each(|s| *s = false);
        }
    }
    count
}

/// fork-exit-status: the program's status is the child's count modulo 256, and the
/// counting was done in the child (its CPU time is in the parent's cutime).
pub fn exit_status(lab: &mut Lab, obs: &mut Observer) {
    let seed = (proclab::clock::now_ns() / 1000 % 40_000) as usize;
    let n = (250_000 + seed..)
        .find(|&n| !primes_below(n).is_multiple_of(256))
        .unwrap_or(250_000);
    let expected = (primes_below(n) % 256) as i32;
    let (pid, end) =
        run_to_end(lab, obs, &[&n.to_string()], Duration::from_secs(20));
    let forked = obs.view(|tl| tl.children_of(pid).len());
    let code = end.and_then(|e| e.status.code());
    let how = end.map_or("it did not end".to_string(), |e| e.status.to_string());
    check!(lab, "forked", forked >= 1, "a child is forked (seen: {forked})");
    check!(
        lab,
        "answer",
        code == Some(expected),
        "your program exits with the child's count modulo 256 (expected {expected} for \
         N = {n}; seen: {how})"
    );
    let (mine, children) = end.map_or((0, 0), |e| (e.utime, e.cutime));
    check!(
        lab,
        "counted_in_child",
        children >= 3 && mine < children,
        "the counting is done by a child that the parent waited for (CPU time in clock \
         ticks: the parent's own {mine}, its waited-for children's {children})"
    );
}
