//! Waiting for workers, bounded: join a thread (a panic in it is a bug in the lab), reap
//! a child that is ending.

use nix::errno::Errno;
use nix::unistd::Pid;
use proclab::wait::waitpid_by;
use proclab::{cleanup, die, Deadline, Status};
use std::time::Duration;

/// A thread's panic is a bug in the lab: say which call failed, like the other errors.
pub trait JoinOrDie<T> {
    fn or_die_thread(self) -> T;
}

impl<T> JoinOrDie<T> for std::thread::Result<T> {
    fn or_die_thread(self) -> T {
        self.unwrap_or_else(|_| {
            die("thread::join (the thread panicked)", Errno::EIO)
        })
    }
}

/// Reap a child that is ending (within 10 s of lab time), and stop owning it.
pub fn reap(child: Pid) -> Status {
    let st = waitpid_by(child, Deadline::after(Duration::from_secs(10)))
        .unwrap_or_else(|| die("waitpid (a worker did not end)", Errno::ETIMEDOUT));
    cleanup::forget(child);
    st
}
