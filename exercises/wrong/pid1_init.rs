//! A wrong solution of pid1-init: SIGTERM is passed on, but the init waits for the app
//! only (waitpid(app)); the orphan it adopted stays a zombie until the init exits. The check
//! `no_zombie` fails.

use nix::sys::prctl;
use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use proclab::say_as;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use proclab::_exit;

static TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    TERM.store(true, Ordering::SeqCst);
}

/// The app: it leaves an orphan (a grandchild whose parent exits), then runs until
/// SIGTERM (20 s at most).
fn app() -> ! {
    // SAFETY: signal() before the process has threads.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_DFL) };
    // SAFETY: the helpers only fork, sleep and call _exit.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            // SAFETY: as above.
            if let Ok(ForkResult::Child) = unsafe { fork() } {
                std::thread::sleep(Duration::from_millis(300));
                _exit(0) // an orphan's end: a zombie of the init
            }
            _exit(0)
        }
        Ok(ForkResult::Parent { child }) => drop(waitpid(child, None)),
        Err(_) => {}
    }
    std::thread::sleep(Duration::from_secs(20));
    _exit(0)
}

pub fn main() {
    prctl::set_child_subreaper(true).expect("prctl"); // orphans come here, as to PID 1
    // PID 1 ignores a signal it has no handler for; so does this init, as given.
    // SAFETY: signal() before any thread exists.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    // SAFETY: the app calls only signal, fork, waitpid, sleep and _exit.
    let app = match unsafe { fork() }.expect("fork") {
        ForkResult::Child => app(),
        ForkResult::Parent { child } => child,
    };
    say_as!("init", "started the app {app}");
    // Pass SIGTERM on, then wait for the app.
    let on = SigAction::new(SigHandler::Handler(on_term), SaFlags::empty(), SigSet::empty());
    // SAFETY: the handler only stores to an atomic.
    unsafe { sigaction(Signal::SIGTERM, &on) }.expect("sigaction");
    let code = loop {
        match waitpid(app, None) {
            Ok(WaitStatus::Exited(_, c)) => break c,
            Ok(WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i32,
            Ok(_) => {}
            Err(_) => {
                if TERM.swap(false, Ordering::SeqCst) {
                    let _ = kill(app, Signal::SIGTERM);
                }
            }
        }
    };
    std::process::exit(code)
}
