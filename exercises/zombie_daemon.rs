//! Exercise zombie-daemon (chapter 3, book/src/03-zombie.md): a double fork, no zombie.
//!
//! The parent forks a child; the child starts a new session (setsid), forks the daemon and
//! exits at once. The daemon is adopted (it is not a session leader, so it can never get
//! a controlling terminal) and works for a second, while the parent goes on with its own
//! work for two seconds. As given, the child stays a zombie all that time: fix the parent.
//!
//! Check: `cargo run --bin lab -- check zombie-daemon`. The checker (which adopts orphans,
//! as PID 1 would) sees the daemon adopted, in a session of its own; the child must not
//! stay a zombie (Z) and must be reaped by the parent.

use nix::unistd::{fork, getsid, setsid, ForkResult};
use proclab::_exit;
use proclab::say_as;
use std::time::Duration;

fn main() {
    // SAFETY: the child calls only setsid, fork and _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            // A new session, with no terminal.
            let _ = setsid();
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
            // TODO: the child exits at once: do not leave it a zombie.
        }
    }
    std::thread::sleep(Duration::from_secs(2)); // the parent's own work
    say_as!("parent", "done");
}
