//! Judging the spread of connections over the workers: against an even split (a
//! chi-square test), and against the kernel's rule for blocking accept (the worker that
//! has waited longest is woken).

use nix::unistd::Pid;
use proclab::{check, observe, plain, Lab};
use std::collections::{BTreeMap, HashMap};

/// The chi-square value that counts drawn from an even split exceed with probability 1%,
/// for `df` degrees of freedom (Wilson-Hilferty; within 1% of the tables).
pub fn chi2_critical_1pct(df: usize) -> f64 {
    let k = df.max(1) as f64;
    let z = 2.326_348; // the normal quantile of 99%
    k * (1.0 - 2.0 / (9.0 * k) + z * (2.0 / (9.0 * k)).sqrt()).powi(3)
}

/// Pearson's chi-square of `counts` against an even split of their sum.
pub fn chi2_even(counts: &[usize]) -> f64 {
    let total: usize = counts.iter().sum();
    let e = total as f64 / counts.len().max(1) as f64;
    if e == 0.0 {
        return 0.0;
    }
    counts.iter().map(|&c| (c as f64 - e).powi(2) / e).sum()
}

/// `order`: the worker that answered each connection, made one at a time with every
/// worker asleep in accept4. Checks the even split and the longest-waiting rule.
pub fn judge(lab: &mut Lab, pids: &[Pid], order: &[i32]) {
    let n = pids.len();
    let workers: Vec<i32> = pids.iter().map(|p| p.as_raw()).collect();
    let label = |p: &i32| {
        workers
            .iter()
            .position(|w| w == p)
            .map_or("?".into(), |i| (i + 1).to_string())
    };
    let sequence = order.iter().map(label).collect::<Vec<_>>().join(" ");
    let fork_order =
        workers.iter().map(|w| w.to_string()).collect::<Vec<_>>().join(", ");
    let m = order.len();
    observe!(
        lab,
        "wake_order",
        "{m} connections, one at a time, each once all {n} workers slept in accept4, \
         went to workers\n    {sequence}\n    (1 to {n}: {fork_order}, in the order forked)",
        m,
        n,
        sequence,
        order,
        workers
    );
    // The worker idle longest is the one that served least recently; known once each
    // worker has served once (before that, their places in the queue are not known).
    let mut last: HashMap<i32, usize> = HashMap::new();
    let (mut predicted, mut hits) = (0usize, 0usize);
    for (k, w) in order.iter().enumerate() {
        if last.len() == n {
            let longest = last.iter().min_by_key(|(_, t)| **t).map(|(p, _)| *p);
            predicted += 1;
            hits += (longest == Some(*w)) as usize;
        }
        if workers.contains(w) {
            last.insert(*w, k);
        }
    }
    check!(
        lab,
        "longest_waiting_woken",
        predicted > 0 && hits * 10 >= predicted * 9,
        "{hits} of {predicted} connections (after each worker's first) went to the \
         worker idle longest, the one that served least recently (at least 90%: a worker \
         whose 500 ms accept tick expires queues again behind the others)",
        hits,
        predicted
    );
    let counts: Vec<usize> =
        workers.iter().map(|w| order.iter().filter(|o| *o == w).count()).collect();
    let chi2 = chi2_even(&counts);
    let critical = chi2_critical_1pct(n - 1);
    let expected = m as f64 / n as f64;
    check!(
        lab,
        "spread",
        m == 10 * n && chi2 <= critical,
        "per worker {counts:?} against an even split of {expected:.1} each: chi-square \
         {chi2:.2}, at most {critical:.2} (1% level, {df} degrees of freedom)",
        counts,
        expected,
        chi2,
        critical,
        df = n - 1
    );
}

/// Three clients at once: who is free decides as much as who waited longest.
pub fn concurrent(
    lab: &mut Lab,
    pids: &[Pid],
    per_worker: &BTreeMap<i32, usize>,
    failed: usize,
) {
    let counts: Vec<usize> = pids
        .iter()
        .map(|p| per_worker.get(&p.as_raw()).copied().unwrap_or(0))
        .collect();
    let total: usize = counts.iter().sum();
    let rows: Vec<Vec<String>> = pids
        .iter()
        .zip(&counts)
        .map(|(pid, k)| {
            let share = 100.0 * *k as f64 / total.max(1) as f64;
            vec![pid.to_string(), k.to_string(), format!("{share:.0}%")]
        })
        .collect();
    plain!("  3 clients at once x 20 requests, one connection each:");
    lab.table("spread", &["worker", "requests", "share"], &rows);
    let chi2 = chi2_even(&counts);
    let critical = chi2_critical_1pct(pids.len() - 1);
    let held = failed == 0 && chi2 <= critical;
    let word = if held { "held" } else { "did not hold" };
    observe!(
        lab,
        "spread_concurrent",
        "{total} answered, {failed} failed; chi-square {chi2:.2} against an even split \
         (at most {critical:.2} at 1%): the even split {word} on this run; a small \
         sample, where the worker that is free takes the next connection",
        total,
        failed,
        chi2,
        critical,
        held
    );
}
