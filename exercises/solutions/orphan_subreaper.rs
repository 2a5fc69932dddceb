//! Solution of orphan-subreaper: PR_SET_CHILD_SUBREAPER in the supervisor, before it forks.

use nix::sys::prctl;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, getppid, setpgid, ForkResult, Pid};
use proclab::say_as;
use std::time::Duration;
use proclab::_exit;

pub fn main() {
    // Orphans below this process are re-parented to it, not to PID 1.
    prctl::set_child_subreaper(true).expect("prctl(PR_SET_CHILD_SUBREAPER)");
    // SAFETY: the child calls only fork and _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0)); // a job of its own
            // SAFETY: the grandchild only sleeps, writes one line and calls _exit.
            if let Ok(ForkResult::Child) = unsafe { fork() } {
                std::thread::sleep(Duration::from_millis(300));
                say_as!("grandchild", "my parent is now {}", getppid());
                _exit(42)
            }
            _exit(0) // leaves its child an orphan
        }
        ForkResult::Parent { child } => say_as!("supervisor", "forked {child}"),
    }
    // Reap until there is no child left (ECHILD).
    while let Ok(status) = waitpid(Pid::from_raw(-1), None) {
        say_as!("supervisor", "reaped: {status:?}");
    }
}
