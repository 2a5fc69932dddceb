//! The worker-count rule (plumbing of sweep.rs, with its unit tests): Goetz's N, the N
//! a sweep tries, the best N of a sweep, and which rule came closer to it.

use crate::app::Cost;
use crate::load::Measured;

/// Goetz (Java Concurrency in Practice, 8.2): N = cores x (1 + W/C).
pub fn goetz(cores: usize, cost: Cost) -> usize {
    let ratio = cost.wait_ms as f64 / cost.cpu_ms.max(1) as f64;
    (cores as f64 * (1.0 + ratio)).round() as usize
}

/// The N to try: 1 to 4 x cores + 1 (--quick: 1, cores, 2 x cores + 1, 4 x cores + 1),
/// Goetz's N, and past it when it is beyond 4 x cores + 1; at most 64.
pub fn ns(cores: usize, goetz: usize, quick: bool) -> Vec<usize> {
    let top = 4 * cores + 1;
    let mut v: Vec<usize> = match quick {
        true => vec![1, cores, 2 * cores + 1, top],
        false => (1..=top).collect(),
    };
    v.push(goetz);
    if goetz > top {
        v.extend([(top + goetz).div_ceil(2), (goetz * 5).div_ceil(4)]);
    }
    v.retain(|&n| n <= 64);
    v.sort_unstable();
    v.dedup();
    v
}

// ANCHOR: best_n
/// The best N: the smallest whose throughput is within 10% of the top one,
/// among the points with an acceptable p99 (no errors, p99 <= 3 x p50).
pub fn best_n(points: &[(usize, &Measured)]) -> Option<usize> {
    let fine = |m: &Measured| match (m.p50, m.p99) {
        (Some(p50), Some(p99)) => m.errors == 0 && p99 <= p50 * 3,
        _ => false,
    };
    let ok: Vec<_> = points.iter().filter(|(_, m)| fine(m)).collect();
    let top = ok.iter().map(|(_, m)| m.rps).fold(0.0, f64::max);
    ok.iter().filter(|(_, m)| m.rps >= 0.9 * top).map(|(n, _)| *n).min()
}
// ANCHOR_END: best_n

/// A best N, or `-` where no point was acceptable.
pub fn show(best: Option<usize>) -> String {
    best.map_or("-".into(), |b| b.to_string())
}

/// Which rule came closer to `best`.
pub fn closer(best: Option<usize>, folk: usize, goetz: usize) -> &'static str {
    let Some(b) = best else { return "neither (no acceptable point)" };
    match b.abs_diff(folk).cmp(&b.abs_diff(goetz)) {
        std::cmp::Ordering::Less => "folk rule",
        std::cmp::Ordering::Greater => "Goetz",
        std::cmp::Ordering::Equal => "both alike",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn m(rps: f64, p50_ms: u64, p99_ms: u64, errors: u64) -> Measured {
        let (p50, p99) =
            (Duration::from_millis(p50_ms), Duration::from_millis(p99_ms));
        Measured {
            rps,
            p50: Some(p50),
            p99: Some(p99),
            errors,
            ..Default::default()
        }
    }

    #[test]
    fn the_best_n_is_the_knee_with_an_acceptable_tail() {
        let pts = [m(100.0, 10, 12, 0), m(195.0, 10, 12, 0), m(200.0, 10, 12, 0)];
        let pts: Vec<_> = pts.iter().enumerate().map(|(i, m)| (i + 1, m)).collect();
        assert_eq!(best_n(&pts), Some(2), "within 10% of the top");
        let pts2 = [m(100.0, 10, 12, 0), m(300.0, 10, 40, 0), m(150.0, 10, 12, 1)];
        let pts2: Vec<_> =
            pts2.iter().enumerate().map(|(i, m)| (i + 1, m)).collect();
        assert_eq!(best_n(&pts2), Some(1), "a long tail or an error disqualifies");
    }

    #[test]
    fn the_sweep_covers_the_rules() {
        assert_eq!(goetz(2, Cost { cpu_ms: 1, wait_ms: 9 }), 20);
        assert_eq!(goetz(2, Cost { cpu_ms: 10, wait_ms: 0 }), 2);
        assert_eq!(ns(2, 2, false), (1..=9).collect::<Vec<_>>());
        assert_eq!(ns(2, 20, true), vec![1, 2, 5, 9, 15, 20, 25]);
        assert_eq!(closer(Some(2), 5, 2), "Goetz");
        assert_eq!(closer(Some(6), 5, 2), "folk rule");
        assert_eq!(closer(Some(4), 5, 3), "both alike");
    }
}
