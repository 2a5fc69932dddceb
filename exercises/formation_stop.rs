//! Exercise formation-stop (chapter 13, book/src/13-formation.md): stop a formation on
//! SIGTERM, with a grace period and then SIGKILL.
//!
//! A tiny process manager runs two process types: `web`, which stops at once on
//! SIGTERM, and `stubborn`, which ignores SIGTERM. On SIGTERM the manager passes it on to
//! both. As given, it then waits for both, and waits for ever: the stubborn one never
//! ends. Do what the chapter's manager (and systemd's `TimeoutStopSec=`) does: give them
//! a grace period of 500 ms, reaping each one as it ends, and SIGKILL whatever is still
//! running when it is over; then exit 0.
//!
//! Check: `cargo run --bin lab -- check formation-stop`. Once /proc shows `web` catching
//! SIGTERM and `stubborn` ignoring it, the checker sends SIGTERM to the manager: `web`
//! must be gone within 300 ms, `stubborn` must live at least 400 ms more (its grace
//! period) and be gone within 1.5 s, each reaped by the manager at once, and the manager
//! must exit 0 within 2 s.

use nix::sys::signal::{
    kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal,
};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, getpid, ForkResult, Pid};
use proclab::_exit;
use proclab::say_as;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// SIGTERM sets STOP; without SA_RESTART, a blocked waitpid returns EINTR.
fn catch_sigterm() {
    let on = SigAction::new(
        SigHandler::Handler(on_term),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic.
    unsafe { sigaction(Signal::SIGTERM, &on) }.expect("sigaction");
}

/// Fork a process of type `name`: `web` stops on SIGTERM, `stubborn` ignores it. Either
/// runs for 20 s at most, and dies with the manager.
fn start(name: &str, manager: Pid) -> Pid {
    let stubborn = name == "stubborn";
    // SAFETY: the child only calls prctl, getppid, sigaction, nanosleep and _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            proclab::lifeline::die_with_parent(manager.as_raw());
            if stubborn {
                // SAFETY: signal() is async-signal-safe.
                unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
            }
            for _ in 0..2000 {
                if STOP.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10)); // the work
            }
            _exit(0)
        }
        ForkResult::Parent { child } => child,
    }
}

fn main() {
    let manager = getpid();
    catch_sigterm(); // inherited by the children (the stubborn one ignores it)
    let procs = [start("web", manager), start("stubborn", manager)];
    say_as!(
        "manager",
        "started web.1 as {} and stubborn.1 as {}",
        procs[0],
        procs[1]
    );
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(10));
    }
    say_as!("manager", "SIGTERM: stopping the formation");
    for &p in &procs {
        let _ = kill(p, Signal::SIGTERM);
    }
    // TODO: a grace period of 500 ms: reap each process as it ends (waitpid with
    // WNOHANG, a short sleep between two tries), and when the 500 ms are over, SIGKILL
    // whatever is still running. Reap them all, then exit 0.
    while waitpid(Pid::from_raw(-1), None).is_ok() {}
    say_as!("manager", "every process stopped");
}
