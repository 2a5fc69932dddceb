//! Part 3: which descriptors cross exec (close-on-exec).
//! Chapter: book/src/02-exec.md

use crate::exec_pipe::{argv, cstr, exec_failed, exec_result};
use crate::fd_listing::{parse_fd_listing, Fd};
use crate::DEADLINE;
use nix::fcntl::{fcntl, open, FcntlArg, FdFlag, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{fork, getpid, pipe2, ForkResult};
use proclab::fdio::read_full_by;
use proclab::wait::waitpid_by;
use proclab::{check, cleanup, flush_stdout, lifeline, observe};
use proclab::{Deadline, Lab, OrDie};
use std::os::fd::AsRawFd;

pub fn run(lab: &mut Lab) {
    lab.section("3. Close-on-exec: which descriptors cross exec");
    let parent = getpid().as_raw();
    let std_file = std::fs::File::open("/dev/null").or_die("open");
    let flags = fcntl(&std_file, FcntlArg::F_GETFD).or_die("fcntl");
    observe!(
        lab,
        "std_cloexec",
        "a file opened with Rust's std::fs::File::open (fd {fd}) has FD_CLOEXEC = \
         {cloexec}",
        fd = std_file.as_raw_fd(),
        cloexec = FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC)
    );
    drop(std_file);
    let ls_args = [cstr("ls"), cstr("-l"), cstr("/proc/self/fd")];
    let ls_argv = argv(&ls_args);
    // ANCHOR: cloexec
    // A pipe's read end, without close-on-exec: its inode (pipe:[N]) is its own.
    let (kept, kept_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2");
    fcntl(&kept, FcntlArg::F_SETFD(FdFlag::empty())).or_die("fcntl"); // crosses
    let kept_file =
        std::fs::read_link(format!("/proc/self/fd/{}", kept.as_raw_fd()))
            .or_die("readlink")
            .display()
            .to_string();
    let cloexec = OFlag::O_RDONLY | OFlag::O_CLOEXEC; // closed by exec
    let shut = open("/dev/zero", cloexec, Mode::empty()).or_die("open");
    let (out_rx, out_tx) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // ls's stdout
    let (err_rx, err_tx) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2");
    // ANCHOR_END: cloexec
    if proclab::test_removes("no_cloexec") {
        // Tests only: clear the flag, so /dev/zero crosses the exec too.
        fcntl(&shut, FcntlArg::F_SETFD(FdFlag::empty())).or_die("fcntl");
    }
    if proclab::test_removes("other_file_on_fd") {
        // Tests only: another pipe on the kept number, so the number and the kind
        // of file still match after exec, but not the file itself.
        let (other, _w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2");
        // SAFETY: both are open descriptors; dup2 replaces kept's number.
        unsafe { libc::dup2(other.as_raw_fd(), kept.as_raw_fd()) };
    }
    // ANCHOR: cloexec_child
    flush_stdout();
    // SAFETY: the child only calls prctl, dup2, execvp, write and _exit.
    let child = match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            lifeline::die_with_parent(parent);
            // SAFETY: dup2 of an open descriptor onto stdout (the copy has no
            // CLOEXEC); argv is NULL-terminated, built before fork.
            unsafe {
                libc::dup2(out_tx.as_raw_fd(), 1);
                libc::execvp(ls_argv[0], ls_argv.as_ptr()); // ls lists its own fds
            }
            exec_failed(&err_tx)
        }
        ForkResult::Parent { child } => child,
    };
    cleanup::track(child);
    drop((out_tx, err_tx));
    let by = Deadline::after(DEADLINE);
    let mut buf = vec![0u8; 64 * 1024];
    let listing = read_full_by(&out_rx, &mut buf, by); // until ls exits
    let result = exec_result(&err_rx, by);
    let status = waitpid_by(child, by);
    // ANCHOR_END: cloexec_child
    let (Ok(len), Some(result), Some(status)) = (listing, result, status) else {
        let why = format!("ls (child {child}) did not end within {DEADLINE:?}");
        lab.not_observed("cloexec_respected", why);
    };
    cleanup::forget(child);
    let listing = String::from_utf8_lossy(&buf[..len]).trim_end().to_string();
    let fds = parse_fd_listing(&listing);
    let (kept_fd, shut_fd) = (kept.as_raw_fd(), shut.as_raw_fd());
    // The same number, and the same pipe (its inode): the very file we opened.
    let kept_seen = fds.iter().any(|(fd, t)| *fd == kept_fd && *t == kept_file);
    let shut_seen = fds.iter().any(|(_, t)| t == "/dev/zero");
    let own_dir = format!("/proc/{child}/fd");
    let pid_in_listing = fds.iter().any(|(_, t)| *t == own_dir);
    drop((kept, kept_w, shut));
    let fds: Vec<_> = fds.iter().map(|(fd, t)| Fd { fd: *fd, target: t }).collect();
    observe!(
        lab,
        "fd_listing",
        "`ls -l /proc/self/fd` run by child {pid} after exec ({status}):\n{listing}",
        pid = child.as_raw(),
        forked = true,
        exec = "ls",
        fds,
        status,
        exec_error = result.err().map(|e| format!("{e:?}"))
    );
    observe!(
        lab,
        "fd_summary",
        "fd {kept_fd} ({kept_file}, no O_CLOEXEC) crossed exec: {kept_seen}; fd \
         {shut_fd} (/dev/zero, O_CLOEXEC) crossed: {shut_seen}; ls's own directory fd \
         is {own_dir}: {pid_in_listing}",
        kept_fd,
        kept_file,
        kept_seen,
        shut_fd,
        shut_seen,
        own_dir,
        pid_in_listing
    );
    check!(
        lab,
        "cloexec_respected",
        result.is_ok()
            && status.code() == Some(0)
            && kept_seen
            && !shut_seen
            && pid_in_listing,
        "the exec'd program (same pid) still had the plain descriptor, on the same \
         pipe, and not the close-on-exec one"
    );
}
