//! Exercise pdeathsig (chapter 11, book/src/11-parent-death.md): die with your parent.
//!
//! A parent forks 3 children; each gets ready (300 ms), then works (sleeps) for up to 20 s,
//! while the parent waits. The checker kills the parent with SIGKILL, which no handler can
//! catch. As given, the children live on, adopted. Make each child ask the kernel for a
//! signal when its parent dies, and leave at once if the parent has died already.
//!
//! Check: `cargo run --bin lab -- check pdeathsig`. The checker kills the parent twice:
//! once after the children are ready, once while they are still getting ready. No child
//! may outlive it by more than a second (plus the getting ready, the second time).

use nix::sys::wait::wait;
use nix::unistd::{fork, getpid, ForkResult};
use proclab::_exit;
use proclab::say_as;
use std::time::Duration;

fn main() {
    let parent = getpid();
    for _ in 0..3 {
        // SAFETY: the child only sleeps, writes one line and calls _exit.
        if let ForkResult::Child = unsafe { fork() }.expect("fork") {
            // Getting ready.
            std::thread::sleep(Duration::from_millis(300));
            // TODO: die when the parent dies, even if it died while we got ready.
            say_as!("child", "ready; my parent is {parent}");
            for _ in 0..200 {
                std::thread::sleep(Duration::from_millis(100)); // the work
            }
            _exit(0)
        }
    }
    while wait().is_ok() {}
}
