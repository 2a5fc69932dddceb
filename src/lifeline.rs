//! A child's lifeline: the lab's descendants end within a second of the lab's death, even
//! when the lab is SIGKILLed and no handler of its own can run.
//!
//! - [`die_with_parent`], for a direct child: `PR_SET_PDEATHSIG` asks the kernel to send
//!   SIGKILL when the parent dies, and the `getppid` re-check closes the race where the
//!   parent died between `fork` and `prctl`. It survives `exec`.
//! - [`Lifeline`], for a descendant whose parent is *meant* to die first (an orphan, a
//!   family of the parent-death lab): a pipe whose write end only the lab keeps. The
//!   descendant sleeps by polling the read end; end of file means the lab is gone.

use crate::_exit;
use nix::fcntl::OFlag;
use nix::unistd::pipe2;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// In a child right after `fork` (async-signal-safe): if `parent` dies, even by SIGKILL,
/// the kernel sends this process SIGKILL. If `parent` is already gone, `_exit(1)` now.
pub fn die_with_parent(parent: i32) {
    // SAFETY: prctl, getppid and _exit are async-signal-safe.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL); // survives execve
        if libc::getppid() != parent {
            libc::_exit(1); // the parent died before prctl took effect
        }
    }
}

/// A pipe from the lab to its descendants: they see end of file when the lab is gone.
pub struct Lifeline {
    read: OwnedFd,
    write: OwnedFd,
}

impl Lifeline {
    /// Make the pipe in the lab, before forking. Both ends are close-on-exec: a program
    /// that a descendant execs holds neither.
    pub fn new() -> nix::Result<Lifeline> {
        let (read, write) = pipe2(OFlag::O_CLOEXEC)?;
        Ok(Lifeline { read, write })
    }

    /// In a forked child, first thing: close the inherited write end, so that only the
    /// lab holds one. Call it once, in the first process forked from the lab: its own
    /// children inherit the closed state, and a second call could close an unrelated
    /// descriptor that has reused the number. Async-signal-safe.
    pub fn hold(&self) {
        // SAFETY: close is async-signal-safe; this process's copy of the write end is not
        // used again (the OwnedFd is never dropped in a child that leaves with _exit).
        unsafe { libc::close(self.write.as_raw_fd()) };
    }

    /// The read end, to add to a child's own `poll` set (POLLHUP: the lab is gone).
    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// In a child: sleep up to `ms` milliseconds. Returns true if the lab is gone (the
    /// child should `_exit` now), false when the time is up. Async-signal-safe.
    pub fn sleep_ms(&self, ms: i32) -> bool {
        let mut p = libc::pollfd {
            fd: self.read.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut p, 1, ms) };
            if n < 0 && nix::errno::Errno::last() == nix::errno::Errno::EINTR {
                continue; // a signal the child handles; the sleep restarts (bounded by ms)
            }
            return n > 0; // POLLHUP (or stray data): the lab is gone
        }
    }

    /// In a child: wait until the lab is gone, then `_exit(0)`. Use it instead of
    /// `pause()` in a child that is meant to live on. Async-signal-safe.
    pub fn wait_then_exit(&self) -> ! {
        while !self.sleep_ms(-1) {}
        _exit(0)
    }
}
