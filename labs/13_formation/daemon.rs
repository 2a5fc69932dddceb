//! The `daemon` process type: a server that daemonizes the classic way (bind in the
//! foreground, fork, setsid, fork, PID file, stdio on /dev/null), as twelve-factor
//! says a process never should. Part 5 (never_daemonize.rs) runs it.

use crate::programs::{on_sigterm, readable, stopping, var};
use nix::errno::Errno;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, setsid, ForkResult};
use proclab::_exit;
use proclab::narrate::{write_all_fd, StackBuf};
use proclab::{fdio, Deadline, OrDie};
use std::ffi::CString;
use std::fmt::Write as _;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// What the daemon needs after it forked, all prepared before (no allocation after).
struct Daemon {
    listener: i32,
    pidfile: CString,
    ps: String,
    lifeline: bool,
}

/// `daemon`: bind $PORT in the foreground (a second copy fails here, visibly), then
/// daemonize. Tests can remove the daemonizing: it then serves in the foreground.
pub fn daemon() -> ! {
    let port = var("PORT");
    let l = std::net::TcpListener::bind(format!("127.0.0.1:{port}"))
        .unwrap_or_else(|e| {
            let errno = Errno::from_raw(e.raw_os_error().unwrap_or(0));
            eprintln!(
                "bind 127.0.0.1:{port}: {}",
                proclab::wait::errno_text(errno)
            );
            std::process::exit(1)
        });
    on_sigterm();
    let d = Daemon {
        listener: l.as_raw_fd(),
        pidfile: CString::new(var("PIDFILE")).unwrap_or_default(),
        ps: var("PS"),
        lifeline: var("PROCLAB_LIFELINE") == "3",
    };
    if proclab::test_removes("foreground") {
        serve(&d); // tests only: twelve-factor's way, no daemon
    }
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).or_die("pipe2");
    // ANCHOR: daemonize
    // SAFETY: this program has one thread; the children make raw system calls only.
    if let ForkResult::Parent { child } = unsafe { fork() }.or_die("fork") {
        drop(ready_w);
        let _ = waitpid(child, None); // the first child leaves at once
        let up = Deadline::after(Duration::from_secs(5));
        let up = fdio::read_full_by(&ready_r, &mut [0], up); // the daemon is ready
        std::process::exit(if up == Ok(1) { 0 } else { 1 }) // the manager sees 0
    }
    // A new session and group: no terminal, out of the manager's group.
    setsid().or_die("setsid");
    // SAFETY: as above.
    if let ForkResult::Parent { .. } = unsafe { fork() }.or_die("fork") {
        _exit(0) // a session leader could get a terminal back
    }
    write_pidfile(&d.pidfile); // the grandchild: the daemon
    let _ = fdio::write_all(&ready_w, b"!");
    serve(&d)
    // ANCHOR_END: daemonize
}

/// The daemon's pid into the PID file, stdio onto /dev/null, cwd /. Raw calls only.
fn write_pidfile(path: &CString) {
    let mut text = StackBuf::new();
    // SAFETY: getpid, open, write, dup2, close and chdir with valid arguments.
    unsafe {
        let _ = writeln!(text, "{}", libc::getpid());
        let flags =
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC;
        let fd = libc::open(path.as_ptr(), flags, 0o644);
        write_all_fd(fd, text.as_bytes());
        libc::close(fd);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        libc::chdir(c"/".as_ptr());
    }
}

/// Answer requests until SIGTERM (then remove the PID file, as a clean daemon does,
/// and exit 0) or the lab's end (its lifeline, fd 3, reads end of file).
fn serve(d: &Daemon) -> ! {
    let mut body = StackBuf::new();
    // SAFETY: getpid has no preconditions.
    let _ = writeln!(body, "{} pid {} on -", d.ps, unsafe { libc::getpid() });
    let lab_gone = || d.lifeline && readable(3, 0);
    while !stopping() && !lab_gone() {
        if !readable(d.listener, 100) {
            continue;
        }
        let (none, len) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: accept on our listening socket; the connection is answered, closed.
        let c = unsafe { libc::accept(d.listener, none, len) };
        if c >= 0 {
            crate::http::answer(c, body.as_bytes());
        }
    }
    // SAFETY: unlink and _exit are async-signal-safe.
    unsafe {
        if stopping() {
            libc::unlink(d.pidfile.as_ptr());
        }
        libc::_exit(0)
    }
}
