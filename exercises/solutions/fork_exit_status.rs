//! Solution of fork-exit-status: the parent waits, and exits with the child's exit code.

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use proclab::say_as;
use proclab::_exit;

fn count_primes(n: u32) -> u32 {
    let is_prime = |k: u32| (2..).take_while(|d| d * d <= k).all(|d| !k.is_multiple_of(d));
    (2..n).filter(|&k| is_prime(k)).count() as u32
}

pub fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let mut primes = 0;
    // SAFETY: the child only computes, writes one line and calls _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            primes = count_primes(n);
            say_as!("child", "{primes} primes below {n}");
            _exit((primes % 256) as i32)
        }
        ForkResult::Parent { child } => {
            // The child's count comes back in its exit status (its low 8 bits).
            let code = match waitpid(child, None).expect("waitpid") {
                WaitStatus::Exited(_, code) => code,
                other => panic!("the child did not exit: {other:?}"),
            };
            say_as!("parent", "the child found {code} primes (mod 256); mine: {primes}");
            std::process::exit(code)
        }
    }
}
