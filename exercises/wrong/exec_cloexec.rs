//! A wrong solution of exec-cloexec: FD_CLOEXEC is set with fcntl in the parent after the
//! fork. The child's descriptor table is a copy made at fork, without the flag, so `sleep`
//! still holds the secret. The check `no_leak` fails.

use nix::fcntl::{fcntl, open, FcntlArg, FdFlag, OFlag};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{execvp, fork, ForkResult};
use proclab::say_as;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use proclab::_exit;

pub fn main() {
    let path = std::env::args().nth(1).expect("usage: ex-exec-cloexec SECRET_FILE");
    let secret = open(path.as_str(), OFlag::O_RDONLY, Mode::empty()).expect("open");
    say_as!("parent", "the secret is open as fd {}", secret.as_raw_fd());
    let argv = [c"sleep".to_owned(), CString::new("1").expect("no NUL")];
    // SAFETY: the child only calls execvp and _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let _ = execvp(&argv[0], &argv);
            _exit(127)
        }
        ForkResult::Parent { child } => {
            // Close-on-exec, set after the fork: only the parent's copy gets it.
            fcntl(&secret, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).expect("fcntl");
            let status = waitpid(child, None).expect("waitpid");
            say_as!("parent", "sleep ended: {status:?}");
        }
    }
    drop(secret);
}
