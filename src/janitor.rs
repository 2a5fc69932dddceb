//! The janitor of a named segment or a directory (a cgroup). The lab removes them on
//! every way out but one: SIGKILL, when no code of the lab runs. [`crate::cleanup::track_shm`]
//! and [`crate::cleanup::track_dir`] therefore fork a janitor per path, a child that holds
//! a lifeline to the lab (a pipe whose only write end the lab keeps). When the lab dies,
//! the kernel closes that end, the janitor's `poll` sees the hang-up, and it removes the
//! path. `forget_shm` and `forget_dir` first write one byte, "released", then close the
//! end: the janitor exits *without* removing anything (the lab removed the path itself,
//! and a lab that forgot to must be seen to have forgotten), and the lab reaps it.

use nix::fcntl::OFlag;
use nix::unistd::{pipe2, ForkResult, Pid};
use std::ffi::c_char;
use std::ffi::CStr;
use std::os::fd::{AsRawFd, IntoRawFd};

/// How a path goes.
#[derive(Clone, Copy)]
pub(crate) enum Job {
    /// unlink(2): a name in /dev/shm.
    Unlink,
    /// rmdir(2), retried while the directory is busy: a cgroup is busy until the last
    /// process in it has been reaped (after a SIGKILL of the lab, its children die at
    /// the same moment as the lab). At most 800 ms, so that the janitor ends within the
    /// second the lab's descendants have.
    Rmdir,
}

impl Job {
    /// Remove `path`. Async-signal-safe.
    pub(crate) fn remove(self, path: *const c_char) {
        let pause = libc::timespec { tv_sec: 0, tv_nsec: 2_000_000 };
        // SAFETY: path is a valid NUL-terminated string; unlink, rmdir, nanosleep
        // and errno are async-signal-safe.
        unsafe {
            match self {
                Job::Unlink => drop(libc::unlink(path)),
                Job::Rmdir => {
                    for _ in 0..400 {
                        let busy = libc::rmdir(path) != 0
                            && *libc::__errno_location() == libc::EBUSY;
                        if !busy {
                            break;
                        }
                        libc::nanosleep(&pause, std::ptr::null_mut());
                    }
                }
            }
        }
    }
}

/// Fork the janitor of `path` (a file under /dev/shm, or a directory). Returns the write
/// end of its lifeline (a raw descriptor, so that the cleanup table can hold it in an
/// atomic) and its pid; None if `pipe2` failed (the path is then removed on every way
/// out but SIGKILL, as before).
pub(crate) fn start(path: &CStr, job: Job) -> Option<(i32, Pid)> {
    // Close-on-exec: a program a child execs must not hold the lab's end open.
    let (rx, tx) = pipe2(OFlag::O_CLOEXEC).ok()?;
    crate::flush_stdout();
    // SAFETY: the child only calls prctl, close, poll, unlink or rmdir and nanosleep,
    // and _exit.
    match unsafe { crate::cleanup::fork_tracked() } {
        ForkResult::Child => {
            let name: &[u8] = match job {
                Job::Unlink => b"shm-janitor\0",
                Job::Rmdir => b"dir-janitor\0", // a cgroup
            };
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
                while libc::poll(&mut p, 1, -1) <= 0 {}
                // A byte: released by the lab. End of file: the lab is gone.
                let mut byte = 0u8;
                let released =
                    libc::read(rx.as_raw_fd(), (&raw mut byte).cast(), 1) == 1;
                if !released {
                    job.remove(path.as_ptr());
                }
                libc::_exit(0)
            }
        }
        ForkResult::Parent { child } => Some((tx.into_raw_fd(), child)),
    }
}
