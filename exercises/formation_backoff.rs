//! Exercise formation-backoff (chapter 13, book/src/13-formation.md): restart a crashed
//! process with back-off, and give up at the start limit.
//!
//! A tiny process manager runs one process type, `crasher`: it cannot reach its
//! database, so it exits 1 100 ms after it starts. As given, the manager reaps it once
//! and exits 0: the formation is gone. Make it do what the chapter's manager does (and
//! systemd's `Restart=on-failure` with a start limit): restart the crasher 100 ms after
//! its first death, 200 ms after the second, 400 ms after the third (the wait doubles),
//! and after the fourth life give up, exiting with the crasher's status, 1.
//!
//! Check: `cargo run --bin lab -- check formation-backoff`. The checker watches the
//! manager's children in /proc: four lives with four pids, each started after the wait
//! for its turn (from the previous one's end), each reaped by the manager, no fifth, and
//! the manager exits 1 soon after the fourth.

use nix::sys::wait::waitpid;
use nix::unistd::{fork, getpid, ForkResult, Pid};
use proclab::_exit;
use proclab::say_as;
use std::time::Duration;

/// Fork a crasher: it dies with the manager, and exits 1 after 100 ms.
fn start_crasher(manager: Pid) -> Pid {
    // SAFETY: the child only calls prctl, getppid, nanosleep and _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            proclab::lifeline::die_with_parent(manager.as_raw());
            std::thread::sleep(Duration::from_millis(100)); // "cannot reach the database"
            _exit(1)
        }
        ForkResult::Parent { child } => child,
    }
}

fn main() {
    let manager = getpid();
    let crasher = start_crasher(manager);
    say_as!("manager", "started crasher.1 as {crasher}");
    let status = waitpid(crasher, None).expect("waitpid");
    say_as!("manager", "crasher {crasher} ended: {status:?}");
    // TODO: restart it: wait 100 ms, start a new crasher (start_crasher), wait for its
    // end, and so on, the wait doubling each time (100, 200, 400 ms). When the fourth
    // life has ended, give up: exit with status 1.
}
