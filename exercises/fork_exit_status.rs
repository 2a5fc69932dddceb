//! Exercise fork-exit-status (chapter 1, book/src/01-fork.md): the answer in the status.
//!
//! The child counts the primes below N (the program's argument); the parent must exit
//! with that count modulo 256. As given, the parent reads the count from the variable the
//! child wrote, but after fork the child's memory is a copy: the parent still sees 0.
//!
//! Check: `cargo run --bin lab -- check fork-exit-status`. The checker knows the answer
//! and reads your program's exit status; from /proc it also sees which process did the
//! counting (the CPU time of the parent against that of its children).

use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};
use proclab::_exit;
use proclab::say_as;

fn count_primes(n: u32) -> u32 {
    let is_prime =
        |k: u32| (2..).take_while(|d| d * d <= k).all(|d| !k.is_multiple_of(d));
    (2..n).filter(|&k| is_prime(k)).count() as u32
}

fn main() {
    let n: u32 =
        std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let mut primes = 0;
    // SAFETY: the child only computes, writes one line and calls _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            primes = count_primes(n);
            say_as!("child", "{primes} primes below {n}");
            _exit((primes % 256) as i32)
        }
        ForkResult::Parent { child } => {
            // TODO: the child's count comes back in its exit status; `primes` here is
            // the parent's own copy, which the child never touched.
            let _ = waitpid(child, None);
            say_as!("parent", "the child found {primes} primes (mod 256)");
            std::process::exit((primes % 256) as i32)
        }
    }
}
