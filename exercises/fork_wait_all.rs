//! Exercise fork-wait-all (chapter 1, book/src/01-fork.md): four children at once.
//!
//! The parent starts four children, each of which works for 400 ms. As given, the parent
//! waits for each child before it starts the next, so they run one after another. Make
//! the four work at the same time, and still wait for every one of them.
//!
//! Check: `cargo run --bin lab -- check fork-wait-all`. The checker watches /proc: four
//! children must be alive at once, and each must be reaped by this process (not left to
//! whoever adopts orphans). A hint: `cargo run --bin lab -- hint fork-wait-all`.

use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};
use proclab::_exit;
use proclab::say_as;
use std::time::Duration;

fn main() {
    for i in 0..4 {
        // SAFETY: the child only sleeps, writes one line and calls _exit.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                std::thread::sleep(Duration::from_millis(400)); // the child's work
                say_as!("child", "worker {i} done");
                _exit(i)
            }
            ForkResult::Parent { child } => {
                // TODO: the four children should work at the same time, and every
                // one of them must still be waited for.
                let status = waitpid(child, None).expect("waitpid");
                say_as!("parent", "child {child}: {status:?}");
            }
        }
    }
}
