//! A wrong solution of fork-wait-all: the four run together, but the parent calls wait()
//! once, which reaps one child; the other three are left to whoever adopts them when the
//! parent exits. The check `reaped_by_parent` fails.

use nix::sys::wait::wait;
use nix::unistd::{fork, ForkResult};
use proclab::say_as;
use std::time::Duration;
use proclab::_exit;

pub fn main() {
    for i in 0..4 {
        // SAFETY: the child only sleeps, writes one line and calls _exit.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                std::thread::sleep(Duration::from_millis(400)); // the child's work
                say_as!("child", "worker {i} done");
                _exit(i)
            }
            ForkResult::Parent { child } => {
                say_as!("parent", "started {child}");
            }
        }
    }
    let status = wait().expect("wait");
    say_as!("parent", "a child ended: {status:?}");
}
