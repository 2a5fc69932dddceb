//! The master's signals: which it blocks and takes one at a time with `sigtimedwait`, and
//! how an interrupting one is handed back to the harness (clean up, die of it).

use nix::sys::signal::{SigSet, Signal};
use std::time::Duration;

/// The signals the master takes in its loop. The demo leaves SIGINT and SIGTERM to the
/// harness (clean up, die of the signal) until it signals itself in section 4.
pub fn signals(demo: bool) -> SigSet {
    use Signal::*;
    let mut set: SigSet =
        [SIGCHLD, SIGQUIT, SIGHUP, SIGTTIN, SIGTTOU].into_iter().collect();
    if !demo {
        set.add(SIGTERM);
        set.add(SIGINT);
    }
    set
}

/// Wait up to `wait` for one of `set` (blocked) to be pending; take it and return it with
/// the pid of its sender.
pub fn wait_signal(set: &SigSet, wait: Duration) -> Option<(Signal, i32)> {
    let ts = libc::timespec {
        tv_sec: wait.as_secs() as libc::time_t,
        tv_nsec: wait.subsec_nanos() as libc::c_long,
    };
    // SAFETY: an all-zero siginfo_t is a valid value to be overwritten.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // Sleeps until a signal of the set is pending or the time is up.
    // SAFETY: `set`, `info` and `ts` are valid for the call.
    let s = unsafe { libc::sigtimedwait(set.as_ref(), &mut info, &ts) };
    // SAFETY: for a signal sent by kill(2) the kernel filled in si_pid.
    let from = unsafe { info.si_pid() };
    Signal::try_from(s).ok().map(|sig| (sig, from))
}

/// A signal that interrupts the demo, taken by sigtimedwait: unblock it and raise it, so
/// the harness's handler kills and reaps the workers and the lab dies of that signal.
pub fn hand_back(sig: Signal) -> ! {
    let _ = SigSet::from(sig).thread_unblock();
    let _ = nix::sys::signal::raise(sig); // the handler runs now and does not return
    unreachable!("the harness's handler for {sig} ends the process")
}
