//! A wrong solution of pgroup-stop: kill(0, SIGTERM) signals the caller's own process
//! group, which also holds the supervisor: it kills itself. The check `supervisor_survives`
//! fails.

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};
use proclab::say_as;
use std::time::Duration;
use proclab::_exit;

/// Sleep 20 s, in steps, then leave.
fn linger() -> ! {
    for _ in 0..200 {
        std::thread::sleep(Duration::from_millis(100));
    }
    _exit(0)
}

pub fn main() {
    // SAFETY: the server calls only fork, sleep and _exit; so do its workers.
    let server = match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            for _ in 0..2 {
                // SAFETY: as above.
                if let Ok(ForkResult::Child) = unsafe { fork() } {
                    linger()
                }
            }
            linger()
        }
        ForkResult::Parent { child } => child,
    };
    say_as!("supervisor", "started the server {server}");
    std::thread::sleep(Duration::from_millis(500));
    // Signal the process group: everyone the server started is in it.
    kill(Pid::from_raw(0), Signal::SIGTERM).expect("kill");
    let status = waitpid(server, None).expect("waitpid");
    say_as!("supervisor", "the server ended: {status:?}");
}
