//! Solution of pdeathsig: each child sets PR_SET_PDEATHSIG, then re-checks getppid()
//! against the pid saved before fork, since a parent that died before the prctl sends no
//! signal.

use nix::sys::wait::wait;
use nix::unistd::{fork, getpid, ForkResult};
use proclab::say_as;
use std::time::Duration;
use proclab::_exit;

pub fn main() {
    let parent = getpid();
    for _ in 0..3 {
        // SAFETY: the child only sleeps, writes one line and calls _exit.
        if let ForkResult::Child = unsafe { fork() }.expect("fork") {
            std::thread::sleep(Duration::from_millis(300)); // getting ready
            // SIGKILL when the parent dies; if it is gone already, no signal will come.
            // SAFETY: prctl, getppid and _exit are async-signal-safe.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent.as_raw() {
                    libc::_exit(1);
                }
            }
            say_as!("child", "ready; my parent is {parent}");
            for _ in 0..200 {
                std::thread::sleep(Duration::from_millis(100)); // the work
            }
            _exit(0)
        }
    }
    while wait().is_ok() {}
}
