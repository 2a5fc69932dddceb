//! Part 2: a failed exec returns; the child reports errno and exits 127.
//! Chapter: book/src/02-exec.md

use crate::exec_pipe::{argv, cstr, exec_failed, exec_result};
use crate::DEADLINE;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::unistd::{fork, getpid, pipe2, ForkResult};
use proclab::wait::waitpid_by;
use proclab::{check, cleanup, flush_stdout, lifeline, observe, say};
use proclab::{Deadline, Lab, OrDie};

pub fn run(lab: &mut Lab) {
    lab.section("2. A failed exec returns; the child reports it and exits 127");
    let parent = getpid().as_raw();
    // Tests only: a program that exists, so the exec does not fail.
    let program = if proclab::test_removes("program_exists") {
        "true"
    } else {
        "proclab-no-such-program"
    };
    let missing_args = [cstr(program)];
    let missing_argv = argv(&missing_args);
    // ANCHOR: fail
    let (err_rx, err_tx) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2");
    flush_stdout();
    // SAFETY: the child only calls prctl, execvp, write (say!, exec_failed) and
    // _exit; argv was built before fork.
    let child = match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            lifeline::die_with_parent(parent);
            // SAFETY: argv is NULL-terminated, of C strings built before fork.
            unsafe { libc::execvp(missing_argv[0], missing_argv.as_ptr()) };
            say!("execvp failed; reporting errno to my parent and exiting 127");
            exec_failed(&err_tx)
        }
        ForkResult::Parent { child } => child,
    };
    cleanup::track(child);
    drop(err_tx);
    let by = Deadline::after(DEADLINE);
    let result = exec_result(&err_rx, by); // 4 bytes: the child's errno
    let status = waitpid_by(child, by);
    // ANCHOR_END: fail
    let (Some(result), Some(status)) = (result, status) else {
        let why = format!("child {child} did not end within {DEADLINE:?}");
        lab.not_observed("exec_failure_127", why);
    };
    cleanup::forget(child);
    let errno = result.err();
    observe!(
        lab,
        "exec_failure",
        "the child sent back {errno_text}; waitpid: {status}",
        pid = child.as_raw(),
        forked = true,
        errno = errno.map(|e| format!("{e:?}")),
        errno_text =
            result.err().map_or("nothing".into(), proclab::wait::errno_text),
        status
    );
    check!(
        lab,
        "exec_failure_127",
        errno == Some(Errno::ENOENT) && status.code() == Some(127),
        "execvp of a missing program returned ENOENT in the child, which exited 127"
    );
}
