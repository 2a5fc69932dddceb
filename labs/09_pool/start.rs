//! Section 1: the workers are forked once, each with a pipe for tasks and one for
//! results; idle, each sleeps in read(2), which /proc shows.

use super::pool::{shared, Board, ProcPool, Worker, MAX_WORKERS};
use super::worker::{close_all, worker_loop};
use super::Args;
use nix::fcntl::OFlag;
use nix::unistd::{getpid, pipe2, ForkResult};
use proclab::lifeline::die_with_parent;
use proclab::procfacts::{self, State};
use proclab::{check, cleanup, flush_stdout, observe, say_as, Lab, OrDie};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::Duration;

impl ProcPool {
    /// Fork `n` workers once; each may hold `depth` tasks at a time. A worker that
    /// sends nothing for `deadline` is stuck: `map` gives up, `shutdown` kills it.
    pub fn start(n: usize, depth: usize, deadline: Duration) -> ProcPool {
        let mut pool = ProcPool {
            master: getpid().as_raw(),
            workers: Vec::with_capacity(n),
            board: shared::<Board>(),
            depth,
            deadline,
            retry: !proclab::test_removes("no_retry"), // tests only: a task is lost
            static_split: proclab::test_removes("static_split"), // tests only
            replacements: Vec::new(),
        };
        for slot in 0..n.min(MAX_WORKERS) {
            let w = pool.spawn(slot);
            pool.workers.push(w);
        }
        pool
    }

    /// The master's ends of every other worker's pipes.
    fn fds_except(&self, slot: usize) -> Vec<RawFd> {
        let others = self.workers.iter().enumerate().filter(|&(i, _)| i != slot);
        others
            .flat_map(|(_, w)| [w.tasks.as_raw_fd(), w.results.as_raw_fd()])
            .collect()
    }

    // ANCHOR: spawn
    pub fn spawn(&self, slot: usize) -> Worker {
        let others = self.fds_except(slot); // now: the child must not allocate
        let (task_r, task_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // tasks
        let (res_r, res_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // results
        self.board.slots[slot].store(0, Ordering::Release);
        flush_stdout();
        // SAFETY: the child only calls prctl, close, read, write, nanosleep, _exit.
        match unsafe { cleanup::fork_tracked() } {
            ForkResult::Child => {
                die_with_parent(self.master); // even if the lab is SIGKILLed
                close_all(&others); // the master's ends of the others' pipes
                close_all(&[task_w.as_raw_fd(), res_r.as_raw_fd()]); // and of mine
                say_as!("worker", "ready in slot {slot}");
                let board = &self.board.slots[slot];
                worker_loop(task_r.as_fd(), res_w.as_fd(), board)
            }
            ForkResult::Parent { child } => {
                drop((task_r, res_w)); // the worker's ends: only it holds them now
                Worker::new(child, task_w, res_r, self.depth)
            }
        }
    }
    // ANCHOR_END: spawn
}

/// Section 1: start the pool and see each worker from outside.
pub fn run(lab: &mut Lab, args: &Args) -> ProcPool {
    let n = args.workers as usize;
    let pool = ProcPool::start(n, args.depth as usize, args.deadline());
    let me = getpid();
    let mut idle = 0;
    for w in &pool.workers {
        let pid = w.pid.as_raw();
        // Idle, a worker sleeps in read(2) on its task pipe: wait (bounded) for it.
        let s = procfacts::wait_for_state(pid, &['S'], Duration::from_secs(5));
        let state = State(s.unwrap_or('?'));
        let wchan =
            procfacts::poll_until(Duration::from_secs(1), || procfacts::wchan(pid))
                .unwrap_or_default();
        let ppid = procfacts::ppid(pid).unwrap_or(0);
        observe!(
            lab,
            "worker",
            "worker {pid}: ppid {ppid}, state {state}, waiting in {wchan}",
            pid,
            forked = true,
            ppid,
            state,
            wchan
        );
        idle += (ppid == me.as_raw() && state.0 == 'S') as usize;
    }
    lab.show_tree(me);
    check!(lab, "workers_forked", idle == n,
        "{idle} of {n} workers are children of the master, idle (S) and waiting for tasks");
    pool
}
