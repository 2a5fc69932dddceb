//! A wrong solution of zombie-daemon: the parent reaps the child, but only after its own
//! two seconds of work; the child is a zombie all that time. The check `no_zombie` fails.

use nix::sys::wait::waitpid;
use nix::unistd::{fork, getsid, setsid, ForkResult, Pid};
use std::sync::atomic::{AtomicI32, Ordering};
use proclab::say_as;
use std::time::Duration;
use proclab::_exit;

static CHILD: AtomicI32 = AtomicI32::new(0);

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
            CHILD.store(child.as_raw(), Ordering::SeqCst); // reaped when the work is done
        }
    }
    std::thread::sleep(Duration::from_secs(2)); // the parent's own work
    let child = Pid::from_raw(CHILD.load(Ordering::SeqCst));
    let status = waitpid(child, None).expect("waitpid");
    say_as!("parent", "done; reaped {child}: {status:?}");
}
