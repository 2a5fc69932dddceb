//! The lab's side of a server (plumbing): start one (fork, then exec this binary as
//! `--serve MODEL`, and read its port from a pipe) and stop it (SIGTERM, a bounded
//! wait, then SIGKILL). A master of the servers starts its loops the same way.

use crate::plan::Plan;
use crate::Model;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{pipe2, ForkResult, Pid};
use proclab::wait::waitpid_by;
use proclab::{cleanup, die, fdio, flush_stdout, lifeline, Deadline};
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// An exec of this binary as `--serve MODEL`: strings and pointers made before fork,
/// so that the forked child only has to call execv.
pub struct ServerExec {
    exe: CString,
    _argv: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

impl ServerExec {
    pub fn new(model: Model, workers: usize, extra: &[String]) -> ServerExec {
        let name =
            clap::ValueEnum::to_possible_value(&model).expect("a model name");
        let mut v =
            vec!["io-models".to_string(), format!("--serve={}", name.get_name())];
        v.push(format!("--workers={workers}"));
        v.extend(extra.iter().cloned());
        let argv: Vec<CString> =
            v.into_iter().map(|s| CString::new(s).expect("no NUL")).collect();
        let mut ptrs: Vec<*const libc::c_char> =
            argv.iter().map(|a| a.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        let exe = std::fs::read_link("/proc/self/exe").unwrap_or_default();
        let exe = CString::new(exe.into_os_string().into_encoded_bytes())
            .expect("no NUL");
        ServerExec { exe, _argv: argv, ptrs }
    }

    /// In a forked child: become the server, or `_exit(127)`. Async-signal-safe.
    pub fn exec(&self) -> ! {
        // SAFETY: execv with strings made before fork; _exit if it fails, without
        // running the parent's code.
        unsafe {
            libc::execv(self.exe.as_ptr(), self.ptrs.as_ptr());
            libc::_exit(127)
        }
    }
}

/// A server started by the lab: its top process and port.
pub struct Server {
    pub model: Model,
    pub workers: usize,
    pub pid: Pid,
    pub port: u16,
}

impl Server {
    /// Fork and exec a server of `model` with `workers`; wait (10 s at most) for its port.
    pub fn start(plan: &Plan, model: Model, workers: usize) -> Server {
        let (r, w) = pipe2(OFlag::O_CLOEXEC).unwrap_or_else(|e| die("pipe2", e));
        let mut extra = plan.server_flags.clone();
        extra.push(format!("--ready-fd={}", w.as_raw_fd()));
        let exec = ServerExec::new(model, workers, &extra);
        let lab = nix::unistd::getpid().as_raw();
        flush_stdout();
        // SAFETY: the child only calls prctl, getppid, fcntl, execv and _exit.
        match unsafe { cleanup::fork_tracked() } {
            ForkResult::Child => {
                // SIGKILL when the lab dies (PDEATHSIG survives the exec).
                lifeline::die_with_parent(lab);
                // SAFETY: clear close-on-exec on the one descriptor the server keeps.
                unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETFD, 0) };
                exec.exec()
            }
            ForkResult::Parent { child } => {
                drop(w); // only the server writes: EOF if it dies first
                let mut buf = [0u8; 6];
                let by = Deadline::after(Duration::from_secs(10));
                let got = fdio::read_full_by(&r, &mut buf, by);
                let port = std::str::from_utf8(&buf).ok().map(str::trim);
                match (got, port.and_then(|p| p.parse().ok())) {
                    (Ok(6), Some(port)) => {
                        Server { model, workers, pid: child, port }
                    }
                    (Err(e), _) => die("read (the server's port)", e),
                    _ => {
                        die("the server (it ended before listening)", Errno::EPIPE)
                    }
                }
            }
        }
    }

    /// SIGTERM, then (after 5 s) SIGKILL; reaped either way.
    pub fn stop(self) {
        let _ = kill(self.pid, Signal::SIGTERM);
        let by = Deadline::after(Duration::from_secs(5));
        if waitpid_by(self.pid, by).is_none() {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = waitpid_by(self.pid, Deadline::after(Duration::from_secs(5)));
        }
        cleanup::forget(self.pid);
    }
}
