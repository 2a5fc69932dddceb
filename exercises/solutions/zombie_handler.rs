//! Solution of zombie-handler: the handler reaps in a loop with WNOHANG until no ended
//! child is left, since one pending SIGCHLD may stand for all five children.

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, pipe, read, ForkResult, Pid};
use proclab::say_as;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use proclab::_exit;

const CHILDREN: usize = 5;
static SIGNALS: AtomicUsize = AtomicUsize::new(0);
static COLLECTED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_sigchld(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::SeqCst);
    // One signal may stand for several children: reap until none has ended.
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => break, // none ended yet; ECHILD
            Ok(_) => {
                COLLECTED.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

pub fn main() {
    let on = SigAction::new(
        SigHandler::Handler(on_sigchld),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler calls only async-signal-safe functions.
    unsafe { sigaction(Signal::SIGCHLD, &on) }.expect("sigaction");
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    chld.thread_block().expect("sigprocmask"); // busy: SIGCHLD waits

    let (gun_r, gun_w) = pipe().expect("pipe");
    for i in 0..CHILDREN {
        // SAFETY: the child only reads from the pipe, then calls _exit.
        if let ForkResult::Child = unsafe { fork() }.expect("fork") {
            drop(gun_w);
            let _ = read(&gun_r, &mut [0u8; 1]); // end of file: the start signal
            _exit(10 + i as i32)
        }
    }
    say_as!("parent", "forked {CHILDREN} children; they all exit now");
    drop(gun_w); // every child sees end of file at once
    std::thread::sleep(Duration::from_millis(300));
    chld.thread_unblock().expect("sigprocmask"); // the one pending SIGCHLD arrives
    std::thread::sleep(Duration::from_secs(2)); // the parent goes on working
    let (s, c) = (SIGNALS.load(Ordering::SeqCst), COLLECTED.load(Ordering::SeqCst));
    say_as!("parent", "SIGCHLD arrived {s} time(s); {c} of {CHILDREN} statuses collected");
}
