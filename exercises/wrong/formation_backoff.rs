//! A wrong solution of formation-backoff: the manager restarts the crasher at once, with no
//! wait between a death and the next start (what overmind does), and gives up at the
//! fourth. The check `backoff` fails.

use nix::sys::wait::waitpid;
use nix::unistd::{fork, getpid, ForkResult, Pid};
use proclab::_exit;
use proclab::say_as;
use std::time::Duration;

/// Fork a crasher: it dies with the manager, and exits 1 after 100 ms.
fn start_crasher(manager: Pid) -> Pid {
    // SAFETY: the child only calls prctl, getppid, nanosleep and _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            proclab::lifeline::die_with_parent(manager.as_raw());
            std::thread::sleep(Duration::from_millis(100)); // "cannot reach the database"
            _exit(1)
        }
        ForkResult::Parent { child } => child,
    }
}

pub fn main() {
    let manager = getpid();
    let mut crasher = start_crasher(manager);
    say_as!("manager", "started crasher.1 as {crasher}");
    for starts in 2..=4 {
        let status = waitpid(crasher, None).expect("waitpid");
        say_as!("manager", "crasher {crasher} ended: {status:?}");
        crasher = start_crasher(manager); // at once: no back-off
        say_as!("manager", "started crasher.{starts} as {crasher}");
    }
    let status = waitpid(crasher, None).expect("waitpid");
    say_as!("manager", "crasher {crasher} ended: {status:?}; giving up");
    std::process::exit(1)
}
