//! How a child ended, the way a reader of TLPI expects it: `exited, status 7`,
//! `killed by SIGKILL`, `killed by SIGSEGV (core dumped)`, `stopped by SIGSTOP`. In JSON:
//! `{"exited": 7}`, `{"signal": "SIGKILL", "core_dumped": false}`, `{"stopped": "SIGSTOP"}`,
//! and a failed `waitpid` as `{"error": "ECHILD"}`. [`waitpid_by`] waits with a deadline.

use crate::clock::Deadline;
use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::fmt;

/// What `waitpid` returned, as a fact: displays as TLPI prints it, serialises with
/// structured fields. Wraps the whole result, so a failing `waitpid` is a fact too.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Status(pub nix::Result<WaitStatus>);

impl Status {
    /// The exit code if the child exited normally.
    pub fn code(&self) -> Option<i32> {
        match self.0 {
            Ok(WaitStatus::Exited(_, code)) => Some(code),
            _ => None,
        }
    }

    /// The signal that killed the child, if one did.
    pub fn signal(&self) -> Option<nix::sys::signal::Signal> {
        match self.0 {
            Ok(WaitStatus::Signaled(_, sig, _)) => Some(sig),
            _ => None,
        }
    }
}

impl From<WaitStatus> for Status {
    fn from(s: WaitStatus) -> Status {
        Status(Ok(s))
    }
}

impl From<nix::Result<WaitStatus>> for Status {
    fn from(r: nix::Result<WaitStatus>) -> Status {
        Status(r)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(WaitStatus::Exited(_, code)) => write!(f, "exited, status {code}"),
            Ok(WaitStatus::Signaled(_, sig, core)) => {
                write!(f, "killed by {}", sig.as_str())?;
                if core {
                    write!(f, " (core dumped)")?;
                }
                Ok(())
            }
            Ok(WaitStatus::Stopped(_, sig)) => {
                write!(f, "stopped by {}", sig.as_str())
            }
            Ok(WaitStatus::Continued(_)) => write!(f, "continued"),
            Ok(WaitStatus::StillAlive) => write!(f, "still running (WNOHANG)"),
            Ok(other) => write!(f, "{other:?}"),
            Err(e) => write!(f, "waitpid failed: {}", errno_text(e)),
        }
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self.0 {
            Ok(WaitStatus::Exited(_, code)) => {
                m.serialize_entry("exited", &code)?
            }
            Ok(WaitStatus::Signaled(_, sig, core)) => {
                m.serialize_entry("signal", sig.as_str())?;
                m.serialize_entry("core_dumped", &core)?;
            }
            Ok(WaitStatus::Stopped(_, sig)) => {
                m.serialize_entry("stopped", sig.as_str())?
            }
            Ok(WaitStatus::Continued(_)) => {
                m.serialize_entry("continued", &true)?
            }
            Ok(WaitStatus::StillAlive) => {
                m.serialize_entry("still_alive", &true)?
            }
            Ok(other) => m.serialize_entry("other", &format!("{other:?}"))?,
            Err(e) => m.serialize_entry("error", &format!("{e:?}"))?,
        }
        m.end()
    }
}

/// `waitpid(pid, 0)` with a deadline in lab time (`--step` pauses do not count): how
/// the child ended, or None if it was still running when `deadline` passed. `pid` -1
/// waits for any child. A failing `waitpid` (ECHILD) is a status too. It polls with
/// WNOHANG every millisecond: a child that does not end never hangs the lab.
pub fn waitpid_by(pid: Pid, deadline: Deadline) -> Option<Status> {
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) if deadline.expired() => return None,
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {
                std::thread::sleep(std::time::Duration::from_millis(1))
            }
            other => return Some(Status(other)),
        }
    }
}

/// [`waitpid_by`] for a child the lab tracks (`cleanup::track`): once it has been
/// reaped (or `waitpid` said it is not ours), it is forgotten, so that a reused pid is
/// never killed. None if it still runs `within` from now (lab time).
pub fn reap_by(pid: Pid, within: std::time::Duration) -> Option<Status> {
    let status = waitpid_by(pid, Deadline::after(within))?;
    crate::cleanup::forget(pid);
    Some(status)
}

/// [`reap_by`], and a child still running at the deadline is killed (SIGKILL) and
/// reaped: its status, and whether it ended by itself in time.
pub fn reap_or_kill(pid: Pid, within: std::time::Duration) -> (Status, bool) {
    if let Some(status) = reap_by(pid, within) {
        return (status, true);
    }
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    // SIGKILL cannot be caught or ignored: this waitpid returns.
    let status = Status(waitpid(pid, None));
    crate::cleanup::forget(pid);
    (status, false)
}

/// `ECHILD (No child processes)`.
pub fn errno_text(e: Errno) -> String {
    format!("{e:?} ({})", e.desc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;

    #[test]
    fn reads_like_tlpi_and_serialises_with_fields() {
        let p = Pid::from_raw(42);
        let exited = Status::from(WaitStatus::Exited(p, 7));
        assert_eq!(exited.to_string(), "exited, status 7");
        assert_eq!(
            serde_json::to_value(exited).unwrap(),
            serde_json::json!({"exited": 7})
        );
        let killed = Status::from(WaitStatus::Signaled(p, Signal::SIGKILL, false));
        assert_eq!(killed.to_string(), "killed by SIGKILL");
        assert_eq!(
            serde_json::to_value(killed).unwrap(),
            serde_json::json!({"signal": "SIGKILL", "core_dumped": false})
        );
        let failed = Status(Err(Errno::ECHILD));
        assert_eq!(
            failed.to_string(),
            "waitpid failed: ECHILD (No child processes)"
        );
        assert_eq!(
            serde_json::to_value(failed).unwrap(),
            serde_json::json!({"error": "ECHILD"})
        );
    }

    #[test]
    fn waitpid_by_gives_up_at_the_deadline_and_then_reaps() {
        // SAFETY: the child calls only nanosleep and _exit (async-signal-safe).
        let child = match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => unsafe {
                libc::usleep(200_000);
                libc::_exit(7)
            },
            nix::unistd::ForkResult::Parent { child } => child,
        };
        let soon = Deadline::after(std::time::Duration::from_millis(20));
        assert_eq!(waitpid_by(child, soon), None, "still asleep at 20 ms");
        let later = Deadline::after(std::time::Duration::from_secs(10));
        assert_eq!(waitpid_by(child, later).and_then(|s| s.code()), Some(7));
    }
}
