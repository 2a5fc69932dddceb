//! Exercise exec-cloexec (chapter 2, book/src/02-exec.md): keep a secret out of a program.
//!
//! The program opens a secret file (its path is the first argument), then forks a child
//! that runs `sleep 1` with exec. As given, `sleep` inherits the descriptor and could read
//! the secret through /proc/self/fd. Open it so that the kernel closes it at the exec.
//!
//! Check: `cargo run --bin lab -- check exec-cloexec`. The checker reads /proc/PID/fd of
//! the program the child exec'd: no descriptor may lead to the secret (and this program
//! must really hold it open). A hint: `cargo run --bin lab -- hint exec-cloexec`.

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{execvp, fork, ForkResult};
use proclab::_exit;
use proclab::say_as;
use std::ffi::CString;
use std::os::fd::AsRawFd;

fn main() {
    let path = std::env::args().nth(1).expect("usage: ex-exec-cloexec SECRET_FILE");
    // TODO: the kernel must close this descriptor when a child execs another program.
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
            let status = waitpid(child, None).expect("waitpid");
            say_as!("parent", "sleep ended: {status:?}");
        }
    }
    drop(secret);
}
