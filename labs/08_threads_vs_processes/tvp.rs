//! The CPU-bound job the `compute` comparisons split between workers. The lab and its
//! criterion bench (`benches/threads_vs_processes.rs` includes this file) run exactly
//! the same code.

/// The job of size `size` split between `workers` scoped threads; the sum of their parts.
/// A panic in a worker is passed on to the caller.
pub fn split_threads(size: u64, workers: u64) -> u64 {
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..workers)
            .map(|k| {
                s.spawn(move || {
                    let (lo, hi) = part(size, workers, k);
                    job(lo, hi)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .fold(0, u64::wrapping_add)
    })
}

/// One step of splitmix64: a cheap, well-mixed function of `i` the compiler cannot sum in
/// closed form.
#[inline]
pub fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The CPU-bound job: the wrapping sum of `mix(i)` for `i` in `lo..hi`. Every element costs
/// the same, so splitting the range evenly splits the work evenly. No allocation, no lock:
/// a forked child may run it.
pub fn job(lo: u64, hi: u64) -> u64 {
    (lo..hi).fold(0u64, |acc, i| acc.wrapping_add(mix(i)))
}

/// The bounds of part `k` of `n` equal parts of `0..size`.
pub fn part(size: u64, n: u64, k: u64) -> (u64, u64) {
    (size * k / n, size * (k + 1) / n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_range_and_sum_the_same() {
        let size = 1000;
        let whole = job(0, size);
        let split: u64 = (0..3)
            .map(|k| {
                let (lo, hi) = part(size, 3, k);
                job(lo, hi)
            })
            .fold(0, u64::wrapping_add);
        assert_eq!(whole, split);
        assert_eq!(part(size, 3, 0).0, 0);
        assert_eq!(part(size, 3, 2).1, size);
    }
}
