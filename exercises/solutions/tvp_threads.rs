//! Solution of tvp-threads: four scoped threads, which borrow `partial`.

use proclab::say_as;
use std::hint::black_box;

/// The sum of the `i`-th quarter of 1..=n.
fn quarter(n: u64, i: u64) -> u64 {
    let q = n / 4;
    let hi = if i == 3 { n } else { (i + 1) * q };
    (i * q + 1..=hi).fold(0, |s, k| s + black_box(k))
}

pub fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let mut partial = [0u64; 4];
    // Four threads of this process: they write into its `partial`.
    std::thread::scope(|s| {
        for (i, slot) in partial.iter_mut().enumerate() {
            s.spawn(move || *slot = quarter(n, i as u64));
        }
    });
    let (total, expected) = (partial.iter().sum::<u64>(), n * (n + 1) / 2);
    say_as!("main", "sum = {total}, expected {expected}");
    std::process::exit(if total == expected { 0 } else { 1 })
}
