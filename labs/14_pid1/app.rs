//! The program that is PID 1 in parts 1 to 4: it installs no signal handler and never
//! calls wait, like most programs that were not written to be an init. It answers the
//! lab's commands on a pipe. Everything here runs after clone: async-signal-safe only.

use crate::ns::{self, Ends};
use crate::privileges::Ctx;
use nix::unistd::{getpid, getppid};
use proclab::_exit;

/// Commands the lab sends.
pub const PING: i64 = 1;
pub const KILL_INIT: i64 = 2;
pub const SLEEPERS: i64 = 3;
pub const ORPHANS: i64 = 4;

/// Records the namespace's processes send: [kind, pid, ppid, more] (pids as they
/// see them, inside the namespace).
pub const ALIVE: i64 = 101;
pub const KILLED: i64 = 102;
pub const SLEEPER: i64 = 103;
pub const ORPHAN: i64 = 104;

/// What a test may change in the program (one thing each; never in normal use).
#[derive(Clone, Copy, Default)]
pub struct How {
    /// SIGCHLD set to SIG_IGN: the kernel reaps PID 1's children, no zombie stays.
    pub reaps: bool,
    /// The parent of the orphans stays alive: nobody is orphaned.
    pub parent_stays: bool,
}

/// Fork; the child runs `f` (which never returns), the parent goes on at once.
/// Never waits.
fn fork_then(f: impl FnOnce()) {
    // SAFETY: the child runs `f`, async-signal-safe like everything here.
    if let Ok(nix::unistd::ForkResult::Child) = unsafe { nix::unistd::fork() } {
        f();
        _exit(1)
    }
}

// ANCHOR: app
/// PID 1 of parts 1 to 4: no signal handler, no wait. It answers the lab's
/// commands until the lab goes away.
pub fn app(ends: &Ends, ctx: &Ctx, how: How) -> ! {
    if how.reaps {
        // SAFETY: SIG_IGN installs no handler code. (Tests only.)
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    }
    while let Some([op, n, ..]) = ns::command(ends.cmd) {
        let (me, parent) = ids();
        match op {
            PING => ns::send(ends.report, [ALIVE, me, parent, 0]),
            KILL_INIT => fork_then(|| kill_init(ends)),
            SLEEPERS => (0..n).for_each(|_| fork_then(|| sleeper(ends, ctx))),
            ORPHANS => fork_then(|| parent_of_orphans(ends, ctx, n, how)),
            _ => {}
        }
    }
    // end of file: the lab is gone. _exit is async-signal-safe.
    _exit(0)
}
// ANCHOR_END: app

// ANCHOR: kill_init
/// A process of the namespace sends SIGKILL to its parent, PID 1 there.
fn kill_init(ends: &Ends) -> ! {
    let init = getppid().as_raw();
    // SAFETY: kill has no memory-safety preconditions; errno is read at once.
    let (rc, errno) = unsafe { (libc::kill(init, libc::SIGKILL), errno()) };
    ns::send(ends.report, [KILLED, init as i64, rc as i64, errno]);
    _exit(0)
}
// ANCHOR_END: kill_init

/// getpid() and getppid(), as the process sees them (inside its namespace).
pub fn ids() -> (i64, i64) {
    (getpid().as_raw() as i64, getppid().as_raw() as i64)
}

fn errno() -> i64 {
    nix::errno::Errno::last_raw() as i64
}

/// A process that only sleeps (until the lab is gone, in case it outlives PID 1).
fn sleeper(ends: &Ends, ctx: &Ctx) -> ! {
    let (me, parent) = ids();
    ns::send(ends.report, [SLEEPER, me, parent, 0]);
    ctx.lifeline.wait_then_exit()
}

// ANCHOR: orphans
/// Fork `n` children, then exit without waiting for them: they are orphans.
fn parent_of_orphans(ends: &Ends, ctx: &Ctx, n: i64, how: How) -> ! {
    let me = getpid().as_raw();
    for _ in 0..n {
        fork_then(|| {
            let adopter = adopted(me);
            let pid = getpid().as_raw() as i64;
            ns::send(ends.report, [ORPHAN, pid, adopter as i64, me as i64]);
            let mut byte = 0u8;
            // SAFETY: one byte into `byte`: blocks until the lab releases it.
            unsafe { libc::read(ends.release, (&raw mut byte).cast(), 1) };
            // exits; nobody waits, so it stays a zombie of its adopter.
            _exit(0)
        });
    }
    if how.parent_stays {
        ctx.lifeline.wait_then_exit() // tests only: nobody is orphaned
    }
    // exits without a wait: a zombie itself, since PID 1 never waits.
    _exit(0)
}
// ANCHOR_END: orphans

/// In a child of `parent`: wait (up to 2 s) until `parent` has exited and the child
/// has a new parent; return the new parent's pid. Async-signal-safe.
pub fn adopted(parent: i32) -> i32 {
    for _ in 0..2000 {
        let now = getppid().as_raw();
        if now != parent {
            return now;
        }
        let ms = libc::timespec { tv_sec: 0, tv_nsec: 1_000_000 };
        // SAFETY: nanosleep is async-signal-safe.
        unsafe { libc::nanosleep(&ms, std::ptr::null_mut()) };
    }
    getppid().as_raw()
}
