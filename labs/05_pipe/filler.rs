//! The filler of section 3: a child that writes into a pipe nobody reads until EAGAIN,
//! watched from /proc so that a blocking write end (asleep in `pipe_write`, never
//! EAGAIN) ends the wait too; and FIONREAD, what a pipe holds.

use nix::errno::Errno;
use nix::unistd::{getpid, write, ForkResult};
use proclab::_exit;
use proclab::wait::reap_or_kill;
use proclab::{cleanup, flush_stdout, lifeline, procfacts, State, Status};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

pub const PIPE_BUF: usize = libc::PIPE_BUF; // 4096: one page on most machines

/// How a filler child ended: its pid and status, what the pipe held then (FIONREAD),
/// and where it slept if it did not end by itself (a blocking write end).
pub struct Filled {
    pub pid: i32,
    pub status: Status,
    pub queued: usize,
    pub state: State,
    pub asleep_in: Option<String>,
}

impl Filled {
    /// It stopped at EAGAIN (exit 0), not asleep.
    pub fn eagain(&self) -> bool {
        self.asleep_in.is_none() && self.status.code() == Some(0)
    }

    pub fn how(&self) -> String {
        match &self.asleep_in {
            None => format!("EAGAIN; it {}", self.status),
            Some(w) => format!("it slept in {w} (blocking: no EAGAIN); killed"),
        }
    }
}

/// A child writes `piece` bytes at a time into `tx` until EAGAIN, then exits 0;
/// nobody reads. The parent counts what the pipe holds (FIONREAD), not the child's
/// word. A blocking write end sleeps instead: seen in pipe_write, it is killed.
pub fn fill(rx: &OwnedFd, tx: &OwnedFd, piece: usize) -> Filled {
    let (parent, chunk) = (getpid().as_raw(), [7u8; PIPE_BUF]);
    flush_stdout();
    // ANCHOR: fill
    // SAFETY: the child only writes and _exits.
    let child = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            lifeline::die_with_parent(parent);
            loop {
                match write(tx, &chunk[..piece]) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(Errno::EAGAIN) => _exit(0), // no free slot
                    Err(_) => _exit(1),
                }
            }
        }
        ForkResult::Parent { child } => child,
    };
    let w = child.as_raw();
    let asleep_in = procfacts::poll_until(Duration::from_secs(10), || {
        let wchan = procfacts::wchan(w).unwrap_or_default();
        match procfacts::state(w) {
            Some('Z') | None => Some(None), // it ended: EAGAIN, or an error
            Some('S') if wchan.contains("pipe_write") => Some(Some(wchan)),
            _ => None,
        }
    });
    let (queued, state) = (bytes_queued(rx), State::of(w));
    // ANCHOR_END: fill
    let (status, _) = reap_or_kill(child, Duration::ZERO); // killed if not ended
    let asleep_in = asleep_in.unwrap_or(Some("no end in 10 s".into()));
    Filled { pid: w, status, queued, state, asleep_in }
}

/// Bytes waiting in the pipe (ioctl FIONREAD).
pub fn bytes_queued(rx: &OwnedFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to the pointer we pass.
    unsafe { libc::ioctl(rx.as_raw_fd(), libc::FIONREAD, &mut n) };
    n as usize
}
