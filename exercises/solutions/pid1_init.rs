//! Solution of pid1-init: SIGTERM is caught (so waitpid returns EINTR) and passed on to the
//! app; the init reaps any child with waitpid(-1) until ECHILD, keeping the app's status.

use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
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
    // A handler without SA_RESTART: waitpid returns EINTR when SIGTERM comes.
    let on = SigAction::new(SigHandler::Handler(on_term), SaFlags::empty(), SigSet::empty());
    // SAFETY: the handler only stores to an atomic.
    unsafe { sigaction(Signal::SIGTERM, &on) }.expect("sigaction");
    let mut code = 0;
    loop {
        if TERM.swap(false, Ordering::SeqCst) {
            let _ = kill(app, Signal::SIGTERM); // passed on
        }
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(pid, c)) if pid == app => code = c,
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == app => code = 128 + sig as i32,
            Ok(_) | Err(Errno::EINTR) => {} // an adopted orphan reaped; or SIGTERM
            Err(_) => break,                // ECHILD: no child left
        }
    }
    say_as!("init", "every child reaped; exiting with {code}");
    std::process::exit(code)
}
