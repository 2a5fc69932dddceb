//! Solution of pgroup-stop: the server leads a process group of its own (setpgid in the
//! child and in the parent, so that it is done before either goes on), and the supervisor
//! signals that group with killpg.

use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, setpgid, ForkResult, Pid};
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
            // A group of its own, before the workers are forked into it.
            let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
            for _ in 0..2 {
                // SAFETY: as above.
                if let Ok(ForkResult::Child) = unsafe { fork() } {
                    linger()
                }
            }
            linger()
        }
        ForkResult::Parent { child } => {
            let _ = setpgid(child, child); // also here: whichever runs first
            child
        }
    };
    say_as!("supervisor", "started the server {server}");
    std::thread::sleep(Duration::from_millis(500));
    // The whole group: the server and the workers it forked into it.
    killpg(server, Signal::SIGTERM).expect("killpg");
    let status = waitpid(server, None).expect("waitpid");
    say_as!("supervisor", "the server ended: {status:?}");
}
