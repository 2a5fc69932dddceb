//! Section 6: shutdown with poison pills. A STOP is a message like any other, read
//! after every task sent before it; each worker then exits 0 and the master reaps it.

use super::pool::{reap_or_kill, ProcPool};
use super::wire::{Frame, FRAME};
use nix::unistd::Pid;
use proclab::fdio::write_all;
use proclab::{check, observe, procfacts, Lab, Status};

impl ProcPool {
    // ANCHOR: shutdown
    /// A STOP pill to each worker, then reap them all (bounded: a worker still
    /// running at the deadline is killed). Each pid, how it ended, whether in time.
    pub fn shutdown(self) -> Vec<(Pid, Status, bool)> {
        let mut pill = [0u8; FRAME];
        Frame::stop().encode(&mut pill);
        let lost = proclab::test_removes("lost_pill") as usize; // tests only
        for w in &self.workers[..self.workers.len() - lost] {
            let _ = write_all(&w.tasks, &pill); // the poison pill
        }
        let mut ended = Vec::new();
        for w in &self.workers {
            let (status, in_time) = reap_or_kill(w.pid, self.deadline);
            ended.push((w.pid, status, in_time)); // exited, status 0?
        }
        ended
    }
    // ANCHOR_END: shutdown
}

pub fn run(lab: &mut Lab, pool: ProcPool) {
    let ended = pool.shutdown();
    let (workers, mut clean) = (ended.len(), 0);
    for (pid, status, in_time) in ended {
        let gone = !procfacts::exists(pid.as_raw());
        let late =
            if in_time { "" } else { " (still running at the deadline: killed)" };
        let there = if gone { "is gone" } else { "still exists" };
        observe!(
            lab,
            "worker_exit",
            "waitpid({pid}): {status}{late}; /proc/{pid} {there}",
            pid = pid.as_raw(),
            status,
            in_time,
            gone
        );
        clean += (status.code() == Some(0) && in_time && gone) as usize;
    }
    check!(lab, "pool_shutdown", clean == workers,
        "{clean} of {workers} workers read their STOP pill, exited 0 and were reaped");
}
