//! The janitor of a named segment: the lab unlinks its names on every way out but one,
//! SIGKILL, when no handler of its own runs. The janitor, a child that holds a lifeline
//! to the lab, unlinks the name once the lab is gone (or done), then exits.

use nix::unistd::{ForkResult, Pid};
use proclab::lifeline::Lifeline;
use proclab::{cleanup, flush_stdout, OrDie};
use std::ffi::CString;

/// Fork the janitor of `name` (before `shm_open`, so that no instant is uncovered).
/// Dropping the returned lifeline releases it; then reap the pid.
pub fn start(name: &str) -> (Lifeline, Pid) {
    let line = Lifeline::new().or_die("pipe2");
    let cname = CString::new(name).expect("no NUL");
    flush_stdout();
    // ANCHOR: janitor
    // SAFETY: the child only closes, polls, unlinks and _exits (async-signal-safe).
    let pid = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            // Close our copy of the write end: only the lab keeps one. Then sleep
            // until POLLHUP: the lab is gone, or done with the name.
            line.hold();
            while !line.sleep_ms(-1) {}
            // SAFETY: a valid C string; ENOENT (already unlinked) is fine.
            unsafe {
                libc::shm_unlink(cname.as_ptr());
                libc::_exit(0)
            }
        }
        ForkResult::Parent { child } => child,
    };
    // ANCHOR_END: janitor
    (line, pid)
}
