//! Plumbing: the program of parts 5 and 6, run under each init. It is this binary
//! again (`pid1 --role program`), a fresh process: it leaves orphans behind, waits for
//! the lab's command on fd 4 and answers on fd 3. It installs no signal handler.

use crate::app::{self, ALIVE, ORPHAN, PING};
use crate::ns;
use crate::Args;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, getpid, ForkResult};
use proclab::_exit;
use std::os::fd::RawFd;

/// Where the program finds its pipes (the init passes them on, as it does stdin).
pub const REPORT_FD: RawFd = 3;
pub const CMD_FD: RawFd = 4;
/// Command: exit with this code.
pub const EXIT: i64 = 5;
/// Record: the program runs, its orphans are made.
pub const READY: i64 = 201;

/// The program's whole life. Never returns.
pub fn run(args: &Args) -> ! {
    for _ in 0..args.program_orphans {
        // SAFETY: the children call only fork, getpid, getppid, nanosleep, write
        // and _exit.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                let me = getpid().as_raw();
                // SAFETY: as above.
                if let Ok(ForkResult::Child) = unsafe { fork() } {
                    let adopter = app::adopted(me) as i64; // once its parent is gone
                    let pid = getpid().as_raw() as i64;
                    ns::send(REPORT_FD, [ORPHAN, pid, adopter, me as i64]);
                }
                // the orphan's parent leaves at once, and the orphan after
                // its report: a zombie for whoever adopted it.
                _exit(0)
            }
            // The program waits for its own child, not for the orphan.
            Ok(ForkResult::Parent { child }) => drop(waitpid(child, None)),
            Err(e) => proclab::die("fork", e),
        }
    }
    let (me, parent) = app::ids();
    ns::send(REPORT_FD, [READY, me, parent, 0]);
    loop {
        match ns::command(CMD_FD) {
            Some([EXIT, code, ..]) => std::process::exit(code as i32),
            Some([PING, ..]) => ns::send(REPORT_FD, [ALIVE, me, parent, 0]),
            Some(_) => {}
            None => std::process::exit(0), // end of file: the lab is gone
        }
    }
}
