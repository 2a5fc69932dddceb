//! The janitor of a named segment. The lab unlinks its names on every way out but one:
//! SIGKILL, when no code of the lab runs. [`crate::cleanup::track_shm`] therefore forks a
//! janitor per name, a child that holds a lifeline to the lab (a pipe whose only write
//! end the lab keeps). When the lab dies, the kernel closes that end, the janitor's
//! `poll` sees the hang-up, and it unlinks the name. `forget_shm` closes the end itself:
//! the janitor finds the name gone (ENOENT) and exits, and the lab reaps it.

use nix::fcntl::OFlag;
use nix::unistd::{pipe2, ForkResult, Pid};
use std::ffi::CStr;
use std::os::fd::{AsRawFd, IntoRawFd};

/// Fork the janitor of `path` (a file under /dev/shm). Returns the write end of its
/// lifeline (a raw descriptor, so that the cleanup table can hold it in an atomic) and
/// its pid; None if `pipe2` failed (the name is then unlinked on every way out but
/// SIGKILL, as before).
pub(crate) fn start(path: &CStr) -> Option<(i32, Pid)> {
    // Close-on-exec: a program a child execs must not hold the lab's end open.
    let (rx, tx) = pipe2(OFlag::O_CLOEXEC).ok()?;
    crate::flush_stdout();
    // SAFETY: the child only calls prctl, close, poll, unlink and _exit.
    match unsafe { crate::cleanup::fork_tracked() } {
        ForkResult::Child => {
            let name = b"shm-janitor\0";
            let mut p = libc::pollfd {
                fd: rx.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: async-signal-safe calls on valid pointers; the process leaves
            // with _exit, so the OwnedFds are never dropped here.
            unsafe {
                libc::prctl(libc::PR_SET_NAME, name.as_ptr());
                libc::close(tx.as_raw_fd());
                while libc::poll(&mut p, 1, -1) <= 0 {} // until POLLHUP: the lab is gone
                libc::unlink(path.as_ptr());
                libc::_exit(0)
            }
        }
        ForkResult::Parent { child } => Some((tx.into_raw_fd(), child)),
    }
}
