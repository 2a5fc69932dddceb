//! Solution of formation-stop: after passing SIGTERM on, the manager reaps with WNOHANG
//! every 5 ms, and sends SIGKILL to what is left when the 500 ms grace period is over.

use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, ForkResult, Pid};
use proclab::_exit;
use proclab::say_as;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    for &p in &procs {
        let _ = kill(p, Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_millis(500); // the grace period
    let (mut left, mut killed) = (procs.to_vec(), false);
    while !left.is_empty() {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {
                if !killed && Instant::now() >= deadline {
                    say_as!("manager", "grace period over: SIGKILL to {left:?}");
                    for &p in &left {
                        let _ = kill(p, Signal::SIGKILL);
                    }
                    killed = true;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(status) => {
                say_as!("manager", "{status:?}");
                left.retain(|&p| Some(p) != status.pid());
            }
            Err(_) => break, // ECHILD: none left
        }
    }
    say_as!("manager", "every process stopped");
    std::process::exit(0)
}
