//! Demo section 2, how the kernel spreads connections over the workers: a connection made
//! while every worker sleeps in `accept4` goes to the one that has waited longest (a round
//! robin); three clients at once; a keep-alive connection stays with one worker.

use crate::client::{get, keepalive_workers, waiting_on_socket, worker_of};
use crate::master::Master;
use proclab::{check, observe, plain, procfacts, Lab};
use std::collections::HashMap;
use std::time::Duration;

pub fn run(lab: &mut Lab, master: &mut Master) {
    lab.section("2. How the kernel spreads connections over the workers");
    let (port, pids) = (master.cfg.port, master.pids());
    let workers: Vec<i32> = pids.iter().map(|p| p.as_raw()).collect();
    // ANCHOR: spread
    // One connection at a time, each made once every worker sleeps in accept4.
    let mut order = Vec::new();
    for _ in 0..10 * pids.len() {
        let all_idle = procfacts::poll_until(Duration::from_secs(5), || {
            pids.iter().all(|&p| waiting_on_socket(p)).then_some(())
        });
        if all_idle.is_none() {
            lab.not_observed(
                "spread",
                "a worker did not go back to accept4 in 5 s",
            );
        }
        match get(port, "/") {
            Ok((200, body)) => order.push(worker_of(&body).unwrap_or(0)),
            Ok((code, _)) => lab.not_observed("spread", format_args!("got {code}")),
            Err(e) => lab.not_observed("spread", format_args!("no answer: {e}")),
        }
    }
    // ANCHOR_END: spread
    let n = workers.len();
    let label = |p: &i32| {
        workers
            .iter()
            .position(|w| w == p)
            .map_or("?".into(), |i| (i + 1).to_string())
    };
    let sequence = order.iter().map(label).collect::<Vec<_>>().join(" ");
    let m = order.len();
    let forked =
        workers.iter().map(|w| w.to_string()).collect::<Vec<_>>().join(", ");
    observe!(
        lab,
        "wake_order",
        "{m} connections, one at a time, each once all {n} workers slept in \
         accept4, went to workers\n    {sequence}\n    (1 to {n}: {forked}, in the \
         order forked)",
        m,
        n,
        sequence,
        order,
        workers
    );
    // ANCHOR: longest
    // Once each has served, the worker idle longest is the one that served least
    // recently: is it the one the kernel woke?
    let mut last: HashMap<i32, usize> = HashMap::new();
    let (mut predicted, mut hits) = (0, 0);
    for (k, w) in order.iter().enumerate() {
        if last.len() == n {
            let longest = last.iter().min_by_key(|(_, t)| **t).map(|(p, _)| p);
            predicted += 1;
            hits += (longest == Some(w)) as usize;
        }
        if workers.contains(w) {
            last.insert(*w, k);
        }
    }
    // ANCHOR_END: longest
    let mostly = predicted > 0 && hits * 10 >= predicted * 9;
    check!(lab, "longest_waiting_woken", mostly,
        "{hits} of {predicted} connections (after each worker's first) went to the \
         worker idle longest, the one that served least recently (at least 90%: a \
         worker whose 500 ms accept tick expires queues again behind the others)",
        hits, predicted);
    let counts: Vec<usize> =
        workers.iter().map(|w| order.iter().filter(|o| *o == w).count()).collect();
    let (chi2, critical) = (chi2_even(&counts), chi2_critical_1pct(n - 1));
    let expected = m as f64 / n as f64;
    check!(
        lab,
        "spread",
        m == 10 * n && chi2 <= critical,
        "per worker {counts:?} against an even split of {expected:.1} each: \
         chi-square {chi2:.2}, at most {critical:.2} (1% level, {df} degrees of \
         freedom)",
        counts,
        expected,
        chi2,
        critical,
        df = n - 1
    );

    concurrent(lab, port, &workers);

    let (answered, ka) = keepalive_workers(port);
    let by = ka.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ");
    observe!(
        lab,
        "keepalive",
        "{answered} of 10 requests on one keep-alive connection were answered, by \
         worker(s) {by}",
        answered,
        workers = ka
    );
    check!(lab, "keepalive_one_worker", answered == 10 && ka.len() == 1,
        "a keep-alive connection belongs to the worker that accepted it: {answered} \
         of 10 requests answered, by {n} worker(s)", answered, n = ka.len());
}

/// Three clients at once, 20 requests each: who is free decides as much as who waited
/// longest. Reported with the same statistic, as an observation.
fn concurrent(lab: &mut Lab, port: u16, workers: &[i32]) {
    let client = move || (0..20).map(|_| get(port, "/")).collect::<Vec<_>>();
    let clients: Vec<_> = (0..3).map(|_| std::thread::spawn(client)).collect();
    let answers: Vec<Option<i32>> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap_or_default())
        .map(|r| match r {
            Ok((200, body)) => worker_of(&body),
            _ => None,
        })
        .collect();
    let failed = answers.iter().filter(|a| a.is_none()).count();
    let counts: Vec<usize> = workers
        .iter()
        .map(|w| answers.iter().filter(|a| **a == Some(*w)).count())
        .collect();
    let total: usize = counts.iter().sum();
    let rows: Vec<Vec<String>> = workers
        .iter()
        .zip(&counts)
        .map(|(pid, k)| {
            let share = 100.0 * *k as f64 / total.max(1) as f64;
            vec![pid.to_string(), k.to_string(), format!("{share:.0}%")]
        })
        .collect();
    plain!("  3 clients at once x 20 requests, one connection each:");
    lab.table("spread", &["worker", "requests", "share"], &rows);
    let (chi2, critical) =
        (chi2_even(&counts), chi2_critical_1pct(workers.len() - 1));
    let held = failed == 0 && chi2 <= critical;
    let word = if held { "held" } else { "did not hold" };
    observe!(
        lab,
        "spread_concurrent",
        "{total} answered, {failed} failed; chi-square {chi2:.2} against an even \
         split (at most {critical:.2} at 1%): the even split {word} on this run; a \
         small sample, where the worker that is free takes the next connection",
        total,
        failed,
        chi2,
        critical,
        held
    );
}

/// The chi-square value that counts drawn from an even split exceed with probability 1%,
/// for `df` degrees of freedom (Wilson-Hilferty; within 1% of the tables).
fn chi2_critical_1pct(df: usize) -> f64 {
    let k = df.max(1) as f64;
    let z = 2.326_348; // the normal quantile of 99%
    k * (1.0 - 2.0 / (9.0 * k) + z * (2.0 / (9.0 * k)).sqrt()).powi(3)
}

/// Pearson's chi-square of `counts` against an even split of their sum.
fn chi2_even(counts: &[usize]) -> f64 {
    let e = counts.iter().sum::<usize>() as f64 / counts.len().max(1) as f64;
    if e == 0.0 {
        return 0.0;
    }
    counts.iter().map(|&c| (c as f64 - e).powi(2) / e).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi_square_against_an_even_split() {
        assert_eq!(chi2_even(&[10, 10, 10]), 0.0);
        assert_eq!(chi2_even(&[30, 0, 0]), 60.0);
        // The tables: 6.63 (1 degree of freedom), 9.21 (2), 13.28 (4), 21.67 (9).
        for (df, table) in [(1, 6.63), (2, 9.21), (4, 13.28), (9, 21.67)] {
            let ours = chi2_critical_1pct(df);
            assert!((ours - table).abs() / table < 0.01, "{df}: {ours} vs {table}");
        }
    }
}
