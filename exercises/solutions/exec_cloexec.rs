//! Solution of exec-cloexec: open the secret with O_CLOEXEC.

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{execvp, fork, ForkResult};
use proclab::say_as;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use proclab::_exit;

pub fn main() {
    let path = std::env::args().nth(1).expect("usage: ex-exec-cloexec SECRET_FILE");
    // O_CLOEXEC: closed by the kernel at every exec, set atomically at open.
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let secret = open(path.as_str(), flags, Mode::empty()).expect("open");
    say_as!("parent", "the secret is open as fd {}", secret.as_raw_fd());
    let argv = [c"sleep".to_owned(), CString::new("1").expect("no NUL")];
    // SAFETY: the child only calls execvp and _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let _ = execvp(&argv[0], &argv);
            _exit(127)
        }
        ForkResult::Parent { child } => {
            let status = waitpid(child, None).expect("waitpid");
            say_as!("parent", "sleep ended: {status:?}");
        }
    }
    drop(secret);
}
