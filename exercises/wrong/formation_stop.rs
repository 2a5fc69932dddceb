//! A wrong solution of formation-stop: on SIGTERM the manager sends SIGKILL to every
//! process at once, without a grace period: `web` never gets to stop by itself, and
//! `stubborn` is killed before its 500 ms. The check `grace` fails.

use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
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

pub fn main() {
    let manager = getpid();
    catch_sigterm(); // inherited by the children (the stubborn one ignores it)
    let procs = [start("web", manager), start("stubborn", manager)];
    say_as!("manager", "started web.1 as {} and stubborn.1 as {}", procs[0], procs[1]);
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(10));
    }
    say_as!("manager", "SIGTERM: stopping the formation");
    // No waiting for a process that ignores SIGTERM: SIGKILL them all now.
    for &p in &procs {
        let _ = kill(p, Signal::SIGKILL);
    }
    while waitpid(Pid::from_raw(-1), None).is_ok() {}
    say_as!("manager", "every process stopped");
}
