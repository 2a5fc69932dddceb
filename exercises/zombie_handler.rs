//! Exercise zombie-handler (chapter 3, book/src/03-zombie.md): reap from a SIGCHLD handler.
//!
//! Five children end at the same moment while the parent is busy with SIGCHLD blocked.
//! When the parent unblocks it, the handler runs. Make the handler reap, so that no child
//! stays a zombie and every exit status is collected (the parent counts them).
//!
//! Check: `cargo run --bin lab -- check zombie-handler`. The checker watches /proc from
//! outside: no child may stay `Z` for a second, each must be reaped by this process, and
//! SIGCHLD must not be ignored. A hint: `cargo run --bin lab -- hint zombie-handler`.

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::{fork, pipe, read, ForkResult};
use proclab::_exit;
use proclab::say_as;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const CHILDREN: usize = 5;
static SIGNALS: AtomicUsize = AtomicUsize::new(0);
static COLLECTED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_sigchld(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::SeqCst);
    // TODO: collect the exit status of every child that has ended, adding one to
    // COLLECTED for each. One signal may stand for several children.
}

fn main() {
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
    say_as!(
        "parent",
        "SIGCHLD arrived {s} time(s); {c} of {CHILDREN} statuses collected"
    );
}
