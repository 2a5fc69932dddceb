//! Section 6: writing to a pipe with no read end left raises SIGPIPE, whose default
//! action kills the writer; with SIGPIPE ignored (as Rust programs start), `write`
//! fails with EPIPE instead.

use crate::watch::NET;
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{getpid, pipe, ForkResult};
use proclab::wait::waitpid_by;
use proclab::{check, cleanup, flush_stdout, lifeline, observe, Lab, OrDie};
use proclab::{Deadline, Status};
use std::os::fd::AsRawFd;

pub fn run(lab: &mut Lab) {
    let inherited = proclab::test_removes("sigpipe_inherited"); // tests only: no reset
    let parent = getpid().as_raw();
    // SAFETY: sigaction is plain data; all zeroes is a valid value to be overwritten.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries the current disposition.
    unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) };
    let ignored = old.sa_sigaction == libc::SIG_IGN;
    let now = if ignored {
        "ignored (the Rust runtime sets SIG_IGN before main)"
    } else {
        "at its default (terminate)"
    };
    observe!(
        lab,
        "sigpipe_disposition",
        "this program starts with SIGPIPE {now}",
        ignored
    );

    let mut results = Vec::new();
    for default_action in [true, false] {
        // ANCHOR: sigpipe
        let (rx, tx) = pipe().or_die("pipe");
        drop(rx); // the only read end is closed: nobody can ever read
        flush_stdout();
        // SAFETY: the child only calls signal, write and _exit (async-signal-safe).
        let child = match unsafe { cleanup::fork_tracked() } {
            ForkResult::Child => unsafe {
                lifeline::die_with_parent(parent);
                let action =
                    if default_action { libc::SIG_DFL } else { libc::SIG_IGN };
                if !inherited {
                    libc::signal(libc::SIGPIPE, action); // SIG_DFL: the write kills us
                }
                let r = libc::write(tx.as_raw_fd(), b"x".as_ptr().cast(), 1);
                libc::_exit(if r < 0 { Errno::last_raw() } else { 0 }) // status = errno
            },
            ForkResult::Parent { child } => child,
        };
        let status = waitpid_by(child, Deadline::after(NET)).unwrap_or_else(|| {
            let _ = kill(child, Signal::SIGKILL); // it neither wrote nor died
            Status(waitpid(child, None))
        });
        // ANCHOR_END: sigpipe
        cleanup::forget(child);
        let sigpipe = if default_action { "default" } else { "ignored" };
        observe!(
            lab,
            "sigpipe",
            "SIGPIPE {sigpipe}: the writer {pid} ended, {status}",
            pid = child.as_raw(),
            ppid = parent,
            forked = true,
            sigpipe,
            status
        );
        results.push(status);
    }
    check!(
        lab,
        "sigpipe_kills",
        results[0].signal() == Some(Signal::SIGPIPE),
        "with SIGPIPE at its default, writing to a pipe without readers kills the \
         writer (wait status: killed by SIGPIPE)"
    );
    check!(
        lab,
        "epipe_when_ignored",
        results[1].code() == Some(Errno::EPIPE as i32),
        "with SIGPIPE ignored, write fails with EPIPE (32) instead"
    );
}
