//! Exercise pid1-init (chapter 14, book/src/14-pid1.md): a minimal init, as tini is.
//!
//! An init starts the app and stays its parent. Like PID 1 of a container it adopts every
//! orphan (here by PR_SET_CHILD_SUBREAPER, as `tini -s` does), and like PID 1 it ignores
//! SIGTERM, for which it has no handler. The app leaves an orphan behind, which exits
//! after 300 ms; the app itself runs until SIGTERM. As given, `docker stop` would wait
//! in vain: the init neither passes SIGTERM on nor reaps the orphan. Forward SIGTERM to
//! the app, reap every child (adopted ones too), and exit with the app's status.
//!
//! Check: `cargo run --bin lab -- check pid1-init`. The checker sends SIGTERM to the init
//! after a second: the app must end within 2 s, no process may stay a zombie, and the
//! init must exit with 143 (128 + SIGTERM, the app's fate), as tini does.

use nix::sys::prctl;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};
use proclab::_exit;
use proclab::say_as;
use std::time::Duration;

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

fn main() {
    // Orphans come here, as to PID 1.
    prctl::set_child_subreaper(true).expect("prctl");
    // PID 1 ignores a signal it has no handler for; so does this init, as given.
    // SAFETY: signal() before any thread exists.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    // SAFETY: the app calls only signal, fork, waitpid, sleep and _exit.
    let app = match unsafe { fork() }.expect("fork") {
        ForkResult::Child => app(),
        ForkResult::Parent { child } => child,
    };
    say_as!("init", "started the app {app}");
    // TODO: pass SIGTERM on to the app, reap every child (the adopted ones too), and
    // exit with the app's status (128 + the signal if a signal killed it).
    let status = waitpid(app, None).expect("waitpid");
    say_as!("init", "the app ended: {status:?}");
}
