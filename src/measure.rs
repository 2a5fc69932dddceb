//! A stopwatch and min / median / p99 summaries, shared by labs and benches.

use std::fmt;
use std::time::{Duration, Instant};

/// `let sw = Stopwatch::start(); ...; sw.elapsed()`.
#[derive(Clone, Copy, Debug)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    pub fn start() -> Stopwatch {
        Stopwatch(Instant::now())
    }
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// Time `f` `n` times and summarise.
pub fn time_n(n: usize, mut f: impl FnMut()) -> Summary {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let sw = Stopwatch::start();
        f();
        samples.push(sw.elapsed());
    }
    Summary::of(&samples)
}

/// Min, median, p99, max and mean of a set of durations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub min: Duration,
    pub median: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Summary {
    /// Summarise `samples` (at least one).
    pub fn of(samples: &[Duration]) -> Summary {
        assert!(!samples.is_empty(), "Summary::of needs at least one sample");
        let mut s = samples.to_vec();
        s.sort();
        let n = s.len();
        let pick = |q: f64| s[(((n - 1) as f64) * q).round() as usize];
        let total: Duration = s.iter().sum();
        Summary {
            n,
            min: s[0],
            median: pick(0.5),
            p99: pick(0.99),
            max: s[n - 1],
            mean: total / n as u32,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "min {} / median {} / p99 {} (n={})",
            fmt_duration(self.min),
            fmt_duration(self.median),
            fmt_duration(self.p99),
            self.n
        )
    }
}

/// A duration as a fact for `observe!` and `check!`: it shows as [`fmt_duration`] does
/// (`55.6 µs`) and serialises as whole nanoseconds, so name the fact with its unit:
/// `observe!(lab, "spawn", "median {median_ns}", median_ns = Nanos(s.median))`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Nanos(pub Duration);

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fmt_duration(self.0))
    }
}

impl serde::Serialize for Nanos {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0.as_nanos().min(u64::MAX as u128) as u64)
    }
}

/// `850 ns`, `12.3 µs`, `4.56 ms`, `1.23 s`.
pub fn fmt_duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// `bytes` moved in `d`, as `1.23 GiB/s` (or MiB/s).
pub fn fmt_rate(bytes: u64, d: Duration) -> String {
    let per_s = bytes as f64 / d.as_secs_f64().max(1e-12);
    if per_s >= (1u64 << 30) as f64 {
        format!("{:.2} GiB/s", per_s / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB/s", per_s / (1u64 << 20) as f64)
    }
}

/// `4 KiB`, `64 MiB`, `1 GiB`.
pub fn fmt_bytes(b: u64) -> String {
    if b >= 1 << 30 && b.is_multiple_of(1 << 30) {
        format!("{} GiB", b >> 30)
    } else if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
        format!("{} MiB", b >> 20)
    } else if b >= 1 << 10 && b.is_multiple_of(1 << 10) {
        format!("{} KiB", b >> 10)
    } else {
        format!("{b} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_picks_order_statistics() {
        let v: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        let s = Summary::of(&v);
        assert_eq!(s.min, Duration::from_micros(1));
        assert_eq!(s.max, Duration::from_micros(100));
        assert_eq!(s.median, Duration::from_micros(51));
        assert_eq!(s.p99, Duration::from_micros(99));
        assert_eq!(s.n, 100);
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_duration(Duration::from_nanos(850)), "850 ns");
        assert_eq!(fmt_duration(Duration::from_micros(1500)), "1.50 ms");
        assert_eq!(fmt_bytes(64 << 20), "64 MiB");
        assert_eq!(fmt_rate(1 << 30, Duration::from_secs(1)), "1.00 GiB/s");
        let d = Nanos(Duration::from_nanos(55_600));
        assert_eq!(d.to_string(), "55.6 µs");
        assert_eq!(serde_json::to_value(d).unwrap(), serde_json::json!(55_600));
    }
}
