//! Solution of zombie-daemon: the parent reaps the intermediate child right away (it exits
//! as soon as the daemon is forked).

use nix::sys::wait::waitpid;
use nix::unistd::{fork, getsid, setsid, ForkResult};
use proclab::say_as;
use std::time::Duration;
use proclab::_exit;

pub fn main() {
    // SAFETY: the child calls only setsid, fork and _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let _ = setsid(); // a new session, with no terminal
            // SAFETY: the daemon only sleeps, writes one line and calls _exit.
            if let Ok(ForkResult::Child) = unsafe { fork() } {
                let sid = getsid(None).map(|s| s.as_raw()).unwrap_or(0);
                say_as!("daemon", "working in session {sid}");
                std::thread::sleep(Duration::from_secs(1));
                _exit(0)
            }
            _exit(0) // the daemon's parent leaves at once
        }
        ForkResult::Parent { child } => {
            say_as!("parent", "forked {child}, which starts the daemon");
            // The child exits at once: reap it now.
            let status = waitpid(child, None).expect("waitpid");
            say_as!("parent", "reaped {child}: {status:?}");
        }
    }
    std::thread::sleep(Duration::from_secs(2)); // the parent's own work
    say_as!("parent", "done");
}
