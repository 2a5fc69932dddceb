//! Solution of fork-wait-all: fork all four first, keeping their pids, then wait for each.

use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};
use proclab::say_as;
use std::time::Duration;
use proclab::_exit;

pub fn main() {
    let mut kids = Vec::new();
    for i in 0..4 {
        // SAFETY: the child only sleeps, writes one line and calls _exit.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                std::thread::sleep(Duration::from_millis(400)); // the child's work
                say_as!("child", "worker {i} done");
                _exit(i)
            }
            ForkResult::Parent { child } => {
                kids.push(child); // waited for below, once all four run
            }
        }
    }
    for child in kids {
        let status = waitpid(child, None).expect("waitpid");
        say_as!("parent", "child {child}: {status:?}");
    }
}
