//! A wrong solution of fork-exit-status: waitpid with WNOHANG right after fork finds the
//! child still counting (StillAlive), so the parent exits with its own 0 and leaves the child
//! unreaped. The check `answer` fails.

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
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
            // Take the status if the child is done, without blocking.
            if let Ok(WaitStatus::Exited(_, code)) =
                waitpid(child, Some(WaitPidFlag::WNOHANG))
            {
                std::process::exit(code)
            }
            say_as!("parent", "the child found {primes} primes (mod 256)");
            std::process::exit((primes % 256) as i32)
        }
    }
}
