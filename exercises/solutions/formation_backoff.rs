//! Solution of formation-backoff: after each death the manager sleeps 100 ms, doubled for
//! each start so far, and starts a new crasher; at the fourth death it gives up, exit 1.

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, getpid, ForkResult, Pid};
use proclab::_exit;
use proclab::say_as;
use std::time::Duration;

const RESTART_MS: u64 = 100;
const START_LIMIT: u32 = 4;

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

pub fn main() {
    let manager = getpid();
    let mut crasher = start_crasher(manager);
    let mut starts = 1;
    say_as!("manager", "started crasher.1 as {crasher}");
    loop {
        let status = waitpid(crasher, None).expect("waitpid");
        say_as!("manager", "crasher {crasher} ended: {status:?}");
        if starts == START_LIMIT {
            say_as!("manager", "crasher failed {starts} times: giving up");
            let code = match status {
                WaitStatus::Exited(_, c) => c,
                WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
                _ => 1,
            };
            std::process::exit(code)
        }
        let delay = RESTART_MS << (starts - 1); // 100, 200, 400 ms
        say_as!("manager", "restarting crasher in {delay} ms");
        std::thread::sleep(Duration::from_millis(delay));
        crasher = start_crasher(manager);
        starts += 1;
        say_as!("manager", "started crasher.{starts} as {crasher}");
    }
}
