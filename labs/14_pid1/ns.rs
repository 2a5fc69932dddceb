//! Plumbing: a child cloned into a new PID namespace (PID 1 there) that dies with the
//! lab, the pipes between them (records of four numbers, in `wire.rs`), and what
//! /proc says of it from outside (NSpid, signal masks).

use crate::privileges::Ctx;
pub use crate::wire::{command, recv, send, Record};
use nix::errno::Errno;
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;
use proclab::_exit;
use proclab::wait::waitpid_by;
use proclab::{cleanup, fdio, flush_stdout, Deadline, OrDie, Status};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// The child's ends of its pipes, for the function it runs after clone.
pub struct Ends {
    /// Records to the lab (every process of the namespace inherits it).
    pub report: RawFd,
    /// Commands from the lab.
    pub cmd: RawFd,
    /// One byte from the lab releases one waiting descendant.
    pub release: RawFd,
}

/// A child the lab cloned, as the lab sees it: its pid in the lab's namespace and the
/// lab's ends of its pipes. Dropping it kills it (SIGKILL) and reaps it.
pub struct Child {
    pub pid: Pid,
    pub report: OwnedFd,
    pub cmd: OwnedFd,
    pub release: OwnedFd,
    /// How it ended, once reaped (its pid may then belong to another process).
    ended: Option<Ended>,
}

impl Child {
    /// Send a command to the child. False if it is gone (EPIPE).
    pub fn tell(&self, op: i64, arg: i64) -> bool {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&op.to_ne_bytes());
        bytes[8..16].copy_from_slice(&arg.to_ne_bytes());
        fdio::write_all(&self.cmd, &bytes).is_ok()
    }

    /// The next record from the child's namespace, within `ms` of lab time.
    pub fn next(&self, ms: u64) -> Option<Record> {
        recv(&self.report, Deadline::after(Duration::from_millis(ms)))
    }

    /// waitpid with a deadline; once the child is reaped, it is no longer owned.
    pub fn wait_ms(&mut self, ms: u64) -> Ended {
        if let Some(ended) = self.ended {
            return ended;
        }
        let by = Deadline::after(Duration::from_millis(ms));
        let Some(status) = waitpid_by(self.pid, by) else { return Ended(None) };
        cleanup::forget(self.pid);
        self.ended = Some(Ended(Some(status)));
        Ended(Some(status))
    }

    /// SIGKILL (unless already reaped) and reap: for a namespace's PID 1, the
    /// kernel kills every other process of the namespace too before waitpid returns.
    pub fn end(mut self) -> Ended {
        self.stop()
    }

    fn stop(&mut self) -> Ended {
        if self.ended.is_none() {
            let _ = kill(self.pid, Signal::SIGKILL);
        }
        self.wait_ms(5000)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How a child ended, or that it had not by the deadline: `killed by SIGTERM`, or
/// `still running`; in JSON the status's fields, or null.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ended(pub Option<Status>);

impl Ended {
    pub fn signal(&self) -> Option<Signal> {
        self.0.and_then(|s| s.signal())
    }
    pub fn code(&self) -> Option<i32> {
        self.0.and_then(|s| s.code())
    }
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(s) => write!(f, "{s}"),
            None => f.write_str("still running at the deadline"),
        }
    }
}

impl serde::Serialize for Ended {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// clone(2) used like fork(), with `flags` added (CLONE_NEWPID, CLONE_NEWUSER): 0 in
/// the child, the child's pid in the lab. The child is tracked for cleanup before a
/// SIGINT or SIGTERM can be handled (both are held across the call).
///
/// # Safety
/// As for fork: the child may only call async-signal-safe functions.
pub unsafe fn clone_tracked(flags: libc::c_int) -> nix::Result<Option<Pid>> {
    let held = SigSet::from_iter([Signal::SIGINT, Signal::SIGTERM]);
    let mut before = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&held), Some(&mut before))
        .or_die("sigprocmask");
    flush_stdout();
    // ANCHOR: raw_clone
    let flags = (flags | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: no new stack (0): like fork, the child goes on from here on a copy of
    // this stack; the caller keeps it to async-signal-safe calls.
    let r = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
    let out = match r {
        -1 => Err(Errno::last()),
        0 => Ok(None),
        pid => {
            let pid = Pid::from_raw(pid as i32);
            cleanup::track(pid);
            Ok(Some(pid))
        }
    };
    // ANCHOR_END: raw_clone
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&before), None);
    out
}

/// Clone a child with `flags` (0: an ordinary child; `ctx.newpid`: PID 1 of a new
/// namespace) that runs `run`, after tying its life to the lab's: PDEATHSIG kills it
/// when the lab dies, even by SIGKILL, and a namespace's PID 1 takes every process
/// of its namespace along. `run` may only call async-signal-safe functions, and
/// leaves with _exit.
pub fn spawn(ctx: &Ctx, flags: libc::c_int, run: impl FnOnce(&Ends)) -> Child {
    let (report, report_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).or_die("pipe2");
    let (cmd_r, cmd) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).or_die("pipe2");
    let (release_r, release) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).or_die("pipe2");
    // ANCHOR: tie
    // SAFETY: the child calls prctl, poll, dup2, close, then `run`.
    match unsafe { clone_tracked(flags) }.or_die("clone") {
        None => {
            ctx.lifeline.hold();
            // SAFETY: prctl, dup2 and _exit are async-signal-safe.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            // getppid() is 0 in a new namespace (the parent is outside it), so the
            // lifeline tells whether the lab died before prctl took effect.
            if ctx.lifeline.sleep_ms(0) {
                // as above.
                _exit(1)
            }
            // ANCHOR_END: tie
            // SAFETY: as above; stdin becomes /dev/null (no init may take the tty),
            // and the lab's own ends are closed (they are not used again here).
            unsafe {
                libc::dup2(ctx.dev_null.as_raw_fd(), 0);
                for fd in [&report, &cmd, &release] {
                    libc::close(fd.as_raw_fd());
                }
            }
            let ends = Ends {
                report: report_w.as_raw_fd(),
                cmd: cmd_r.as_raw_fd(),
                release: release_r.as_raw_fd(),
            };
            run(&ends);
            // `run` does not return; if it did, leave without the lab's code.
            _exit(1)
        }
        Some(pid) => Child { pid, report, cmd, release, ended: None },
    }
}

/// `4211 1`: numbers (pids, counts) as /proc prints them, for a human line.
pub fn words<T: std::fmt::Display>(numbers: &[T]) -> String {
    let all: Vec<String> = numbers.iter().map(|n| n.to_string()).collect();
    all.join(" ")
}

/// The numbers after `field` in /proc/PID/status, e.g. `NSpid:` gives the pid in each
/// namespace from the outermost in (`[4242, 1]` for PID 1 of a child namespace).
pub fn status_numbers(text: &str, field: &str) -> Vec<i64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|rest| {
            rest.split_whitespace().filter_map(|w| w.parse().ok()).collect()
        })
        .unwrap_or_default()
}

/// A signal mask of /proc/PID/status (`SigCgt:` handled, `SigIgn:` ignored), as bits.
pub fn status_mask(text: &str, field: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| u64::from_str_radix(rest.trim(), 16).ok())
        .unwrap_or(0)
}

/// /proc/PID/status of `pid`, read from the lab's namespace ("" once it is gone).
pub fn status_of(pid: Pid) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default()
}

/// The pid of `pid` in its own innermost namespace (the last of NSpid).
pub fn inner_pid(pid: i32) -> Option<i64> {
    status_numbers(&status_of(Pid::from_raw(pid)), "NSpid:").last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nspid_and_masks_from_proc_status() {
        let text = "Name:\tpid1\nNSpid:\t4242\t1\nSigBlk:\t0000000000000000\n\
                    SigIgn:\t0000000000001000\nSigCgt:\t0000000000004002\n";
        assert_eq!(status_numbers(text, "NSpid:"), vec![4242, 1]);
        assert_eq!(status_numbers(text, "Tgid:"), Vec::<i64>::new());
        assert_eq!(status_mask(text, "SigIgn:"), 1 << 12); // SIGPIPE is 13
        assert_eq!(status_mask(text, "SigCgt:"), (1 << 14) | (1 << 1));
    }
}
