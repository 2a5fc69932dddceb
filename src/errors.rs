//! A failing call ends the lab with `error: waitpid: ECHILD (No child processes)` on stderr
//! and exit code 1, after the cleanup guard has killed and reaped the children.

use crate::_exit;
use crate::{cleanup, narrate, EXIT_ERROR};
use nix::errno::Errno;
use std::fmt::Write as _;

/// Report that `call` failed with `errno` and end the process with exit code 1.
///
/// In the lab's main process the children are killed and reaped first. In a forked child it
/// only writes the line and calls `_exit(1)` (async-signal-safe).
pub fn die(call: &str, errno: Errno) -> ! {
    let mut line = narrate::StackBuf::new();
    let _ = writeln!(line, "error: {call}: {errno:?} ({})", errno.desc());
    narrate::write_all_fd(2, line.as_bytes());
    if narrate::is_owner() {
        cleanup::cleanup();
        crate::report::could_not_run(&format!("{call} failed: {errno:?}"));
        std::process::exit(EXIT_ERROR);
    }
    _exit(EXIT_ERROR)
}

/// `.or_die("waitpid")` on a result: the value, or [`die`] naming the call and errno.
pub trait OrDie<T> {
    fn or_die(self, call: &str) -> T;
}

impl<T> OrDie<T> for nix::Result<T> {
    fn or_die(self, call: &str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => die(call, e),
        }
    }
}

impl<T> OrDie<T> for std::io::Result<T> {
    fn or_die(self, call: &str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => match e.raw_os_error() {
                Some(code) => die(call, Errno::from_raw(code)),
                None => {
                    eprintln!("error: {call}: {e}");
                    if narrate::is_owner() {
                        cleanup::cleanup();
                        crate::report::could_not_run(&format!(
                            "{call} failed: {e}"
                        ));
                        std::process::exit(EXIT_ERROR);
                    }
                    _exit(EXIT_ERROR)
                }
            },
        }
    }
}

/// Convert a libc return value (-1 and errno on failure) into a `nix::Result`.
pub fn check_libc(ret: libc::c_int) -> nix::Result<libc::c_int> {
    Errno::result(ret)
}
