//! The readiness pipe: each member of a family writes one 8-byte (role, pid) record when it
//! is ready, and the observer reads them, so it never guesses with a sleep.

use nix::errno::Errno;
use nix::unistd::{getpid, write, Pid};
use proclab::{die, fdio, Deadline};
use std::os::fd::OwnedFd;

/// Who sent a report on the readiness pipe.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    Parent = 0,
    Child = 1,
    /// Scenario 2: a child that calls prctl only after its parent died (the race).
    Late = 2,
    /// Scenario 3: a child that moved to a process group of its own.
    Leaver = 3,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Parent => "parent",
            Role::Child => "child",
            Role::Late => "late child",
            Role::Leaver => "leaver",
        }
    }
}

/// Tell the observer "I am ready": one 8-byte write, atomic on a pipe (less than PIPE_BUF).
/// Runs in forked processes: async-signal-safe calls only, no allocation.
pub fn report(ready: &OwnedFd, role: Role) {
    let mut rec = [0u8; 8];
    rec[..4].copy_from_slice(&(role as i32).to_ne_bytes());
    rec[4..].copy_from_slice(&getpid().as_raw().to_ne_bytes());
    if write(ready, &rec) != Ok(rec.len()) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(1) }
    }
}

/// Read one 8-byte (role, pid) report, waiting at most until `deadline` (lab time).
pub fn next_report(ready: &OwnedFd, deadline: Deadline) -> (Role, Pid) {
    let mut rec = [0u8; 8];
    match fdio::read_full_by(ready, &mut rec, deadline) {
        Ok(8) => {}
        Ok(_) => die(
            "reading the family's reports (a member died before reporting)",
            Errno::EPIPE,
        ),
        Err(e) => die("reading the family's reports (10 s)", e),
    }
    let role = match i32::from_ne_bytes([rec[0], rec[1], rec[2], rec[3]]) {
        0 => Role::Parent,
        1 => Role::Child,
        2 => Role::Late,
        _ => Role::Leaver,
    };
    (role, Pid::from_raw(i32::from_ne_bytes([rec[4], rec[5], rec[6], rec[7]])))
}
