//! A wrong solution of pdeathsig: PR_SET_PDEATHSIG set in the parent before forking. The
//! setting is cleared in every child at fork (and the parent's own parent never dies here),
//! so the children live on. The check `die_with_parent` fails.

use nix::sys::wait::wait;
use nix::unistd::{fork, getpid, ForkResult};
use proclab::say_as;
use std::time::Duration;
use proclab::_exit;

pub fn main() {
    let parent = getpid();
    // The death signal, asked for once, before the children are forked.
    // SAFETY: prctl has no memory-safety preconditions.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    for _ in 0..3 {
        // SAFETY: the child only sleeps, writes one line and calls _exit.
        if let ForkResult::Child = unsafe { fork() }.expect("fork") {
            std::thread::sleep(Duration::from_millis(300)); // getting ready
            say_as!("child", "ready; my parent is {parent}");
            for _ in 0..200 {
                std::thread::sleep(Duration::from_millis(100)); // the work
            }
            _exit(0)
        }
    }
    while wait().is_ok() {}
}
