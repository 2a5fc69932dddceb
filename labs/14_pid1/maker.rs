//! The zombie maker of parts 7 and 8: PID 1 of a namespace of its own, so that every
//! zombie it makes goes with it on any way out (the kernel reaps a namespace's
//! processes when its PID 1 dies). It obeys the lab's commands. After clone:
//! async-signal-safe calls only.

use crate::ns::{self, Ends, Record};
use proclab::_exit;
use proclab::clock::now_ns;

/// Commands: make N zombies; reap them all; fork one child and reap it.
pub const MAKE: i64 = 1;
pub const REAP: i64 = 2;
pub const FORK_ONE: i64 = 3;
/// Records: [MADE, made, errno of the fork that failed or 0, ns taken],
/// [REAPED, how many, 0, ns taken], [FORKED, 0 or errno, 0, 0].
pub const MADE: i64 = 11;
pub const REAPED: i64 = 12;
pub const FORKED: i64 = 13;

/// The maker's loop. `reaps` (tests only): SIGCHLD ignored, so the kernel reaps at
/// once and no zombie is kept.
pub fn maker(ends: &Ends, reaps: bool) -> ! {
    if reaps {
        // SAFETY: SIG_IGN installs no handler code.
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    }
    while let Some([op, n, ..]) = ns::command(ends.cmd) {
        let reply = match op {
            MAKE => make(n),
            REAP => reap_all(),
            FORK_ONE => fork_one(),
            _ => continue,
        };
        ns::send(ends.report, reply);
    }
    // end of file: the lab is gone.
    _exit(0)
}

fn errno() -> i64 {
    nix::errno::Errno::last_raw() as i64
}

// ANCHOR: make
/// Fork `n` children that exit at once and are never waited for: `n` zombies,
/// unless a fork fails first (EAGAIN at a pids limit), which ends the loop.
fn make(n: i64) -> Record {
    let (start, mut made) = (now_ns(), 0);
    while made < n {
        // SAFETY: the child only calls _exit.
        match unsafe { libc::fork() } {
            0 => _exit(0), // a zombie now: nobody waits
            -1 => return [MADE, made, errno(), (now_ns() - start) as i64],
            _ => made += 1,
        }
    }
    [MADE, made, 0, (now_ns() - start) as i64]
}
// ANCHOR_END: make

/// waitpid(-1) until no child is left (ECHILD).
fn reap_all() -> Record {
    let (start, mut reaped) = (now_ns(), 0);
    loop {
        // SAFETY: waitpid with a null status pointer is allowed.
        match unsafe { libc::waitpid(-1, std::ptr::null_mut(), 0) } {
            -1 if errno() == libc::EINTR as i64 => continue,
            -1 => break,
            _ => reaped += 1,
        }
    }
    [REAPED, reaped, 0, (now_ns() - start) as i64]
}

/// Fork one child that exits, and reap it: does fork work now?
fn fork_one() -> Record {
    // SAFETY: the child only calls _exit.
    match unsafe { libc::fork() } {
        0 => _exit(0),
        -1 => [FORKED, errno(), 0, 0],
        pid => {
            // SAFETY: as in reap_all.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            [FORKED, 0, 0, 0]
        }
    }
}
