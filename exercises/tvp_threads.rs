//! Exercise tvp-threads (chapter 8, book/src/08-threads-vs-processes.md): share by threads.
//!
//! Four workers each add up a quarter of the numbers 1..=N into their slot of `partial`,
//! and main adds the four slots. As given, the workers are forked processes: each writes
//! into its own copy of `partial`, and main adds up four zeros. Run them as four threads
//! of this process instead (std::thread::scope lets them borrow `partial`).
//!
//! Check: `cargo run --bin lab -- check tvp-threads`. The checker reads /proc/PID/task:
//! four worker threads must run at once in this process, each using the CPU, with no
//! child process; and the program exits 0 only if its sum is right.

use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};
use proclab::_exit;
use proclab::say_as;
use std::hint::black_box;

/// The sum of the `i`-th quarter of 1..=n.
fn quarter(n: u64, i: u64) -> u64 {
    let q = n / 4;
    let hi = if i == 3 { n } else { (i + 1) * q };
    (i * q + 1..=hi).fold(0, |s, k| s + black_box(k))
}

fn main() {
    let n: u64 =
        std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let mut partial = [0u64; 4];
    // TODO: the workers must write into this process's `partial`, and work at the same
    // time.
    let mut kids = Vec::new();
    for (i, slot) in partial.iter_mut().enumerate() {
        // SAFETY: the child only computes, writes its own memory and calls _exit.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                *slot = quarter(n, i as u64);
                _exit(0)
            }
            ForkResult::Parent { child } => kids.push(child),
        }
    }
    for child in kids {
        waitpid(child, None).expect("waitpid");
    }
    let (total, expected) = (partial.iter().sum::<u64>(), n * (n + 1) / 2);
    say_as!("main", "sum = {total}, expected {expected}");
    std::process::exit(if total == expected { 0 } else { 1 })
}
