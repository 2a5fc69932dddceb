//! Part 1: exec keeps the pid (and the parent) and replaces the program.
//! Chapter: book/src/02-exec.md

use crate::exec_pipe::{argv, cstr, exec_failed, exec_result};
use crate::DEADLINE;
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{fork, getpid, pipe2, read, write, ForkResult};
use proclab::wait::waitpid_by;
use proclab::{check, cleanup, flush_stdout, lifeline, observe, procfacts};
use proclab::{Deadline, Lab, OrDie};

pub fn run(lab: &mut Lab) {
    lab.section("1. exec keeps the pid and replaces the program");
    let parent = getpid();
    let mut sleep_args = vec![cstr("sleep"), cstr("3600")]; // ended by our SIGTERM
    if proclab::test_removes("same_program") {
        // Tests only: exec this lab's own program again (it exits 2 at once).
        let me = std::env::current_exe().or_die("current_exe");
        sleep_args = vec![cstr(&me.to_string_lossy()), cstr("--no-such-flag")];
    }
    let sleep_argv = argv(&sleep_args);
    // Tests only: write no byte, so the child is never released: it neither execs
    // nor exits.
    let go: &[u8] = if proclab::test_removes("never_exec") { b"" } else { b"g" };
    // ANCHOR: replace
    let (go_rx, go_tx) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // holds the child
    let (err_rx, err_tx) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // exec shuts it
    flush_stdout();
    // SAFETY: the child calls only prctl, read, execvp, write and _exit (glibc's
    // execvp searches PATH without malloc); argv was built before fork.
    let child = match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            lifeline::die_with_parent(parent.as_raw()); // it survives exec
            drop(go_tx); // our copy of the write end: EOF if the parent dies
            let _ = read(&go_rx, &mut [0u8; 1]); // until the parent has looked
            let (program, argv) = (sleep_argv[0], sleep_argv.as_ptr());
            // SAFETY: argv is NULL-terminated, of C strings built before fork.
            unsafe { libc::execvp(program, argv) };
            exec_failed(&err_tx) // execvp returns only if it failed
        }
        ForkResult::Parent { child } => child,
    };
    cleanup::track(child); // killed and reaped on every way out
    drop(err_tx); // only the child holds the write end now
    let pid = child.as_raw();
    let (comm_before, exe_before) = (procfacts::comm(pid), procfacts::exe(pid));
    write(&go_tx, go).or_die("write"); // release the child: it execs now
    let result = exec_result(&err_rx, Deadline::after(DEADLINE));
    // ANCHOR_END: replace
    observe!(
        lab,
        "image",
        "before exec: /proc/{pid}/comm = {comm}, exe = {exe}",
        pid,
        forked = true,
        phase = "before",
        comm = comm_before.clone().unwrap_or_default(),
        exe = exe_before.clone().unwrap_or_default()
    );
    let Some(result) = result else {
        let why =
            format!("child {pid} neither exec'd nor exited within {DEADLINE:?}");
        lab.not_observed("pid_kept_image_changed", why);
    };
    // The comm is renamed a moment after the descriptors close: watch it (bounded).
    let comm_after = procfacts::poll_until(DEADLINE, || {
        procfacts::comm(pid).filter(|c| Some(c) != comm_before.as_ref())
    });
    let exe_after = procfacts::exe(pid);
    let ppid_after = procfacts::ppid(pid);
    observe!(
        lab,
        "image",
        "after exec:  /proc/{pid}/comm = {comm}, exe = {exe}, ppid = {ppid} (the lab)",
        pid,
        phase = "after",
        comm = comm_after.clone().unwrap_or_default(),
        exe = exe_after.clone().unwrap_or_default(),
        ppid = ppid_after.unwrap_or(0),
        exec_error = result.err().map(|e| format!("{e:?}"))
    );
    lab.show_tree(parent);
    // The new program obeys signals like any other, and is still our child.
    kill(child, Signal::SIGTERM).or_die("kill");
    let status = waitpid_by(child, Deadline::after(DEADLINE));
    let Some(status) = status else {
        let why = format!("child {pid} still ran {DEADLINE:?} after SIGTERM");
        lab.not_observed("pid_kept_image_changed", why);
    };
    cleanup::forget(child);
    let sent = "SIGTERM";
    observe!(
        lab,
        "sleep_reaped",
        "sent {sent}; waitpid({pid}): {status}",
        pid,
        sent,
        status
    );
    check!(
        lab,
        "pid_kept_image_changed",
        result.is_ok()
            && comm_after.as_deref() == Some("sleep")
            && exe_after.is_some()
            && exe_before != exe_after
            && ppid_after == Some(parent.as_raw())
            && status.signal() == Some(Signal::SIGTERM),
        "pid {pid} ran this lab, then sleep: same pid and parent, new comm and exe"
    );
}
