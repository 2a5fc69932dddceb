//! Exercise orphan-subreaper (chapter 4, book/src/04-orphan.md): adopt your orphans.
//!
//! A supervisor starts a child, which starts a grandchild and exits at once; the
//! grandchild works for 300 ms and exits with status 42. The supervisor reaps in a loop
//! until it has no child left. As given, the orphaned grandchild is adopted by the nearest
//! subreaper above the supervisor (here the checker; on a plain system PID 1), and the
//! supervisor never learns its status. Make the supervisor adopt it.
//!
//! Check: `cargo run --bin lab -- check orphan-subreaper`. The checker reads the
//! grandchild's parent in /proc: it must become this process, which must reap it.

use nix::sys::wait::waitpid;
use nix::unistd::{fork, getppid, setpgid, ForkResult, Pid};
use proclab::_exit;
use proclab::say_as;
use std::time::Duration;

fn main() {
    // TODO: orphans below this process must be re-parented to it.
    // SAFETY: the child calls only fork and _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            // A job of its own.
            let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
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
