//! Exercise pgroup-stop (chapter 11, book/src/11-parent-death.md): stop a whole family.
//!
//! A supervisor starts a server, which forks 2 workers; all three would sleep for 20 s.
//! After half a second the supervisor stops the server with SIGTERM and reaps it. As
//! given, only the server dies: its workers live on, adopted. Put the server in a process
//! group of its own, and signal that whole group, without signalling the supervisor.
//!
//! Check: `cargo run --bin lab -- check pgroup-stop`. The checker sees the groups in
//! /proc: the server and both workers must end within a second of each other, in a group
//! that is not the supervisor's, and the supervisor must exit 0 by itself.

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};
use proclab::_exit;
use proclab::say_as;
use std::time::Duration;

/// Sleep 20 s, in steps, then leave.
fn linger() -> ! {
    for _ in 0..200 {
        std::thread::sleep(Duration::from_millis(100));
    }
    _exit(0)
}

fn main() {
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
    // TODO: the server and its workers must all stop; the supervisor must not.
    kill(server, Signal::SIGTERM).expect("kill");
    let status = waitpid(server, None).expect("waitpid");
    say_as!("supervisor", "the server ended: {status:?}");
}
