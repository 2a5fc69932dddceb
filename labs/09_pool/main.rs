//! # pool: a process pool from fork, pipes and waitpid, and a bounded message queue
//!
//! N worker processes are forked once. The master hands each one at most `--depth` tasks at a
//! time over its own pipe (length-prefixed messages) and gives it the next task when a
//! result comes back, so a slow task holds up only its own worker. Results carry the task id
//! and are put back in input order. The lab kills a worker with SIGKILL in the middle of a
//! marked task: the master sees the EOF on its result pipe, reaps it (`waitpid` says
//! SIGKILL), forks a replacement and retries the task once. Then a bounded queue (a pipe
//! shrunk to one page) between one producer and several consumers shows back-pressure (the
//! producer asleep in the kernel's pipe write), poison pills reaching every consumer, and how the tasks
//! were shared. Last, the same job is timed three ways (this pool, a thread pool over a
//! crossbeam channel, rayon) and, when python3 is there, against `multiprocessing.Pool.map`.
//!
//! What to look for: `map` returns exactly one result per input, in order, even after a
//! worker was killed; the replacement's new pid; the producer in state S while the queue
//! holds exactly its capacity; the per-task cost in µs of each pool on tiny tasks.
//!
//! Caveats: timings are from one run on a shared machine (the bench `pool` measures them
//! properly); how tasks are shared between workers depends on the scheduler.

use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{fork, pipe2, ForkResult, Pid};
use proclab::clock::now_ns;
use proclab::lifeline::die_with_parent;
use proclab::{
    cleanup, flush_stdout, procfacts, say, say_as, Deadline, Lab, OrDie, Status,
    Stopwatch,
};
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

// The plumbing lives in labs/09_pool/: what is left here is the pool, the queue and the checks.
mod args; // the flags (--workers, --depth, --tasks, --consumers, --hold, --python): see --help
mod books; // the master's record of each worker, and map's outcomes in input order
mod python; // waits for the Python script and reads its figure
mod report; // every observation's fields and words, the tables, the timings of section 5
pub mod task; // the job (rounds of splitmix64), its ways of misbehaving, a safe nap and clock
pub mod threads; // the thread pool's map and drop, and rayon: section 5's other two pools
mod wire; // length-prefixed frames on a pipe, and the queue's 16-byte messages

use args::{Args, PythonMode};
use books::{
    reap_or_kill, unpack, Board, MapResult, Replacement, Worker, MAX_WORKERS,
};
use clap::Parser;
use python::Py;
use report::timed;
use task::{hangs, nap, work, Mode, Task, HANG, SLOW};
use threads::{rayon_map, ThreadPool};
use wire::{
    message, pollin, write_all, Frame, Frames, DATA, FRAME, MSG, PILL, STOP, TASK,
};

/// Anonymous shared memory holding a zeroed `T` (atomics only), seen by every child forked
/// after it. Never unmapped: it lives as long as the lab.
fn shared<T>() -> &'static T {
    let len = std::num::NonZeroUsize::new(std::mem::size_of::<T>())
        .expect("non-zero size");
    use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};
    let prot = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
    // SAFETY: a fresh anonymous mapping, zero-filled; T is made of atomics, valid when zero.
    let p = unsafe { mmap_anonymous(None, len, prot, MapFlags::MAP_SHARED) }
        .or_die("mmap");
    // SAFETY: the mapping is large enough, page-aligned, zeroed and never unmapped.
    unsafe { &*p.as_ptr().cast::<T>() }
}

// ---------------------------------------------------------------------------------------
// The process pool.

pub struct ProcPool {
    master: i32,
    pub workers: Vec<Worker>,
    board: &'static Board,
    depth: usize,
    /// How long `map` waits for any result, and shutdown for a worker's exit.
    deadline: Duration,
    /// False only in a test that removes the retry of a killed worker's task.
    retry: bool,
    pub replacements: Vec<Replacement>,
}

// ANCHOR: worker
/// A worker's life after fork: read tasks, compute, write results, until STOP. SAFETY (every
/// unsafe here): async-signal-safe calls only, on our own fds and stack buffers; no allocation.
fn worker_loop(tasks: RawFd, results: RawFd, board: &AtomicU64) -> ! {
    let me = (unsafe { libc::getpid() } as u64) << 32;
    let mut inbox = Frames::new(); // on the stack: nothing is allocated after fork
    let (mut outbox, mut ready) = ([0u8; FRAME * 64], 0);
    loop {
        let Some(f) = inbox.pop() else {
            // Nothing left to do: send the results (one write for all), then wait for tasks.
            if !write_all(results, &outbox[..std::mem::take(&mut ready)])
                || inbox.fill(tasks) <= 0
            {
                unsafe { libc::_exit(1) } // EPIPE or EOF: the master is gone, so are we
            }
            continue;
        };
        if f.kind != TASK {
            unsafe { libc::_exit(if f.kind == STOP { 0 } else { 2 }) } // STOP: the poison pill
        }
        if !inbox.has_frame()
            && !write_all(results, &outbox[..std::mem::take(&mut ready)])
        {
            unsafe { libc::_exit(1) } // the last task on hand: results first, so more can come
        }
        board.store(me | (f.id + 1) << 4 | u64::from(f.attempt), Ordering::Release); // on show
        let value = run_task(&f);
        board.store(me, Ordering::Release);
        Frame::result(f.id, f.attempt, value)
            .encode(&mut outbox[ready..ready + FRAME]);
        ready += FRAME;
    }
}
// ANCHOR_END: worker

/// The task itself, in the worker: a slow one sleeps first, a marked one hangs (asleep) until
/// the lab's killer sends SIGKILL.
fn run_task(f: &Frame) -> u64 {
    let mode = Mode::from_u32(f.mode);
    if mode == Mode::Slow {
        nap(SLOW);
    }
    if hangs(mode, f.attempt) {
        nap(HANG); // asleep (state S) until the lab's killer sends SIGKILL
    }
    work(f.value, f.rounds)
}

impl ProcPool {
    /// Fork `n` workers once; each may hold `depth` tasks at a time. A worker that sends
    /// nothing for `deadline` is stuck: `map` gives up, `shutdown` kills it.
    pub fn start(n: usize, depth: usize, deadline: Duration) -> ProcPool {
        let board = shared::<Board>();
        let master = nix::unistd::getpid().as_raw();
        let mut pool = ProcPool {
            master,
            workers: Vec::with_capacity(n),
            board,
            depth,
            deadline,
            retry: !proclab::test_removes("no_retry"), // tests only: a task is lost
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
    fn spawn(&self, slot: usize) -> Worker {
        let others = self.fds_except(slot); // listed before fork: the child must not allocate
        let (task_r, task_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // master -> worker: tasks
        let (res_r, res_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // worker -> master: results
        self.board.slots[slot].store(0, Ordering::Release);
        flush_stdout();
        // SAFETY: the child only calls close, read, write, nanosleep, getpid and _exit.
        match unsafe { fork() }.or_die("fork") {
            ForkResult::Child => {
                die_with_parent(self.master);
                for fd in
                    others.iter().chain(&[task_w.as_raw_fd(), res_r.as_raw_fd()])
                {
                    unsafe { libc::close(*fd) }; // the master's ends: EOF must mean "peer died"
                }
                say_as!("worker", "ready in slot {slot}");
                worker_loop(
                    task_r.as_raw_fd(),
                    res_w.as_raw_fd(),
                    &self.board.slots[slot],
                )
            }
            ForkResult::Parent { child } => {
                cleanup::track(child); // killed and reaped on every way out
                drop((task_r, res_w)); // the worker's ends: only the worker holds them now
                Worker::new(child, task_w, res_r, self.depth)
            }
        }
    }
    // ANCHOR_END: spawn

    /// Top worker `w` up to `depth` tasks in flight, from the front of `queue`, in one write.
    fn refill(
        &mut self,
        w: usize,
        tasks: &[Task],
        queue: &mut VecDeque<(usize, u32)>,
    ) {
        let worker = &mut self.workers[w];
        if worker.inflight.len() >= self.depth || queue.is_empty() {
            return; // full, or nothing left to hand out
        }
        let mut buf = [0u8; FRAME * 64];
        let mut len = 0;
        while worker.inflight.len() < self.depth {
            let Some((id, attempt)) = queue.pop_front() else { break };
            Frame::task(id, attempt, &tasks[id]).encode(&mut buf[len..len + FRAME]);
            len += FRAME;
            worker.inflight.push_back((id, attempt));
        }
        // EPIPE if the worker just died: its tasks come back when its EOF is seen.
        let _ = write_all(worker.tasks.as_raw_fd(), &buf[..len]);
    }

    // ANCHOR: map
    /// Run every task; one outcome per task, in input order.
    pub fn map(&mut self, tasks: &[Task]) -> MapResult {
        let mut out = MapResult::new(tasks.len());
        let mut queue: VecDeque<(usize, u32)> =
            (0..tasks.len()).map(|id| (id, 1)).collect(); // (task, attempt)
        let mut quiet = Deadline::after(self.deadline); // no result by then: stuck
        while out.left > 0 {
            for w in 0..self.workers.len() {
                self.refill(w, tasks, &mut queue); // on demand: at most `depth` per worker
            }
            let mut fds: Vec<libc::pollfd> =
                self.workers.iter().map(|w| pollin(&w.results)).collect();
            let (n, ms) = (fds.len() as libc::nfds_t, quiet.poll_ms(100));
            // SAFETY: fds is a live array of pollfd. Sleeps until a worker wrote results or died.
            if unsafe { libc::poll(fds.as_mut_ptr(), n, ms) } <= 0 {
                if quiet.expired() {
                    out.timed_out = true; // a task was lost or a worker is stuck
                    break;
                }
                continue; // EINTR, or woken to see whether a pause moved the deadline
            }
            quiet = Deadline::after(self.deadline);
            for w in (0..fds.len()).filter(|&w| fds[w].revents != 0) {
                let worker = &mut self.workers[w];
                if worker.inbox.fill(worker.results.as_raw_fd()) > 0 {
                    worker.take_results(&mut out); // filed by task id: in input order
                } else {
                    self.replace(w, &mut queue, &mut out); // EOF: the worker died
                }
            }
        }
        out
    }
    // ANCHOR_END: map

    // ANCHOR: replace
    /// Worker `w` died: reap it, put its tasks back (the one it was running: once), and fork
    /// a replacement into its slot.
    fn replace(
        &mut self,
        w: usize,
        queue: &mut VecDeque<(usize, u32)>,
        out: &mut MapResult,
    ) {
        let old = self.workers[w].pid;
        let (status, _) = reap_or_kill(old, self.deadline); // killed by SIGKILL?
                                                            // What it was running, from the board it wrote in shared memory (None if it was idle).
        let (pid, running) = unpack(self.board.slots[w].load(Ordering::Acquire));
        let running = running.filter(|_| pid == old.as_raw());
        for t in std::mem::take(&mut self.workers[w].inflight).into_iter().rev() {
            if Some(t) != running {
                queue.push_front(t); // not started, or done but unsent: back as they were
            }
        }
        match running {
            Some((id, 1)) if self.retry => queue.push_front((id, 2)), // retried once, first
            Some((_, 1)) => {} // (tests only: forgotten, so its result never comes)
            Some((id, attempt)) => out.put(id, Err(attempt)), // died again: given up
            None => {}
        }
        let new = self.spawn(w);
        let ppid = procfacts::ppid(new.pid.as_raw()).unwrap_or(0); // the kernel's word: our child
        self.replacements.push(Replacement(w, old, status, running, new.pid, ppid));
        self.workers[w] = new; // the old pipes are closed here
    }
    // ANCHOR_END: replace

    // ANCHOR: shutdown
    /// A STOP pill to each worker (read after any task before it), then reap them all.
    /// Returns each worker's pid, how it ended, and whether it ended by itself in time.
    pub fn shutdown(self) -> Vec<(Pid, Status, bool)> {
        let mut pill = [0u8; FRAME];
        Frame::stop().encode(&mut pill);
        let lost = proclab::test_removes("lost_pill"); // tests only: one pill is lost
        for w in &self.workers[..self.workers.len() - lost as usize] {
            write_all(w.tasks.as_raw_fd(), &pill); // the poison pill
        }
        let mut ended = Vec::new();
        for w in self.workers {
            let (status, in_time) = reap_or_kill(w.pid, self.deadline); // exited, status 0?
            ended.push((w.pid, status, in_time));
        }
        ended
    }
    // ANCHOR_END: shutdown
}

// ---------------------------------------------------------------------------------------
// The same job with threads: a thread pool over a crossbeam channel (the rest of it, and
// rayon, are in threads.rs).

impl ThreadPool {
    // ANCHOR: threadpool
    pub fn start(n: usize) -> ThreadPool {
        let (task_tx, task_rx) = crossbeam::channel::unbounded::<(usize, Task)>();
        let (res_tx, res_rx) = crossbeam::channel::unbounded();
        let threads = (0..n)
            .map(|_| {
                let (rx, tx) = (task_rx.clone(), res_tx.clone());
                std::thread::spawn(move || {
                    for (id, t) in rx {
                        let _ = tx.send((id, work(t.x, t.rounds))); // whichever thread is free takes the next
                    }
                })
            })
            .collect();
        ThreadPool { tasks: Some(task_tx), results: res_rx, threads }
    }
    // ANCHOR_END: threadpool
}

// ---------------------------------------------------------------------------------------
// The bounded queue (section 4): one producer, several consumers, one pipe of one page.

const MAX_CONSUMERS: usize = 16;
const QUEUE_MESSAGES: u64 = 2000;
const CONSUMER_ROUNDS: u32 = 5000;

#[derive(Default)]
pub struct ConsumerBoard {
    taken: AtomicU64,
    seq_sum: AtomicU64,
    pill: AtomicU32,
    torn: AtomicU32,
}

pub struct QueueBoard {
    sent: AtomicU64,
    longest_write_ns: AtomicU64,
    consumers: [ConsumerBoard; MAX_CONSUMERS],
}

/// How many outcomes equal the serial answer at their own index, and how many are missing.
fn score(tasks: &[Task], got: &MapResult) -> (usize, usize) {
    let right = (tasks.iter().zip(&got.results))
        .filter(|(t, r)| **r == Some(Ok(t.expected())))
        .count();
    let lost = got.results.iter().filter(|r| r.is_none()).count();
    (right, lost)
}

// ---------------------------------------------------------------------------------------

fn main() {
    let args = Args::parse();
    let mut lab = Lab::start(
        "pool",
        "a process pool built from fork, pipes and waitpid returns exactly one result per input in order, survives workers killed mid-task (replaced, task retried once), and a bounded queue blocks its producer when full",
        &args.common,
    );
    let me = nix::unistd::getpid();
    let (nworkers, depth) = (args.workers as usize, args.depth as usize);

    lab.section("1. Fork the workers once");
    let mut pool = ProcPool::start(nworkers, depth, args.deadline());
    let mut alive = 0;
    for w in &pool.workers {
        let pid = w.pid.as_raw();
        // An idle worker sleeps in read(2) on its task pipe: wait (bounded) until it is there.
        let state = procfacts::wait_for_state(pid, &['S'], Duration::from_secs(5))
            .unwrap_or('?');
        let wchan =
            procfacts::poll_until(Duration::from_secs(1), || procfacts::wchan(pid))
                .unwrap_or_default();
        let ppid = procfacts::ppid(pid).unwrap_or(0);
        report::worker(&mut lab, pid, ppid, state, &wchan);
        alive += (ppid == me.as_raw() && state == 'S') as usize;
    }
    lab.show_tree(me);
    lab.check(
        "workers_forked",
        alive == nworkers,
        format_args!("{alive} of {nworkers} workers are children of the master, idle (S) and waiting for tasks"),
    );

    lab.section("2. map: one result per input, in order");
    // ANCHOR: exact
    let mut tasks: Vec<Task> = (0..1000).map(Task::tiny).collect();
    tasks[3].mode = Mode::Slow; // one task sleeps: on demand, the other workers carry on
    let sw = Stopwatch::start();
    let got = pool.map(&tasks);
    let took = sw.elapsed();
    // Each outcome against the serial answer at its own index: how many right, how many lost.
    let (right, lost) = score(&tasks, &got);
    // ANCHOR_END: exact
    report::map(&mut lab, &got, tasks.len(), right, lost, took);
    lab.check(
        "map_exact",
        got.results.len() == tasks.len() && right == tasks.len() && lost == 0 && got.duplicates == 0,
        "map returned exactly one result per input, in input order: no loss, no duplicate",
    );
    stop_if_stuck(&mut lab, &got, args.deadline_ms);
    let slow_rank = got.rank[3];
    report::on_demand(&mut lab, 3, SLOW, slow_rank, tasks.len());
    lab.check(
        "on_demand",
        slow_rank >= tasks.len() / 2,
        "a slow task held up only its own worker: most later tasks finished before it",
    );
    report::tasks_per_worker(&mut lab, &pool.workers, tasks.len());

    lab.section("3. A worker killed in the middle of a task");
    let mut tasks: Vec<Task> = (0..200).map(Task::tiny).collect();
    // Task 7 is killed on attempt 1 and fine on the retry; task 11 is killed on both.
    (tasks[7].mode, tasks[11].mode) = (Mode::CrashOnce, Mode::CrashAlways);
    // ANCHOR: killer
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let (stop, board, tasks) = (stop.clone(), pool.board, tasks.clone());
        std::thread::spawn(move || {
            let mut kills: Vec<(i32, usize, u32, char)> = Vec::new();
            let mut tried: Vec<i32> = Vec::new();
            while !stop.load(Ordering::Acquire) {
                for word in &board.slots {
                    let (pid, Some((task, attempt))) =
                        unpack(word.load(Ordering::Acquire))
                    else {
                        continue;
                    };
                    if tasks.get(task).is_some_and(|t| hangs(t.mode, attempt))
                        && !tried.contains(&pid)
                    {
                        tried.push(pid);
                        let state = procfacts::state(pid).unwrap_or('?');
                        // In the middle of the task. ESRCH (it is gone) is no kill.
                        if kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
                            kills.push((pid, task, attempt, state));
                        }
                    }
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            kills
        })
    };
    let got = pool.map(&tasks);
    stop.store(true, Ordering::Release);
    let kills = killer.join().expect("killer thread");
    // ANCHOR_END: killer
    report::killed(&mut lab, &kills);
    let (mut reaped_killed, mut replaced) = (0, 0);
    for r in &pool.replacements {
        report::replacement(&mut lab, r);
        let Replacement(_, old, _, _, new, ppid) = r;
        reaped_killed += (kills.iter().any(|k| k.0 == old.as_raw())
            && r.signal() == Some(libc::SIGKILL)) as usize;
        replaced += (new != old && *ppid == me.as_raw()) as usize;
    }
    lab.check(
        "worker_replaced",
        !kills.is_empty() && reaped_killed == kills.len() && replaced == kills.len(),
        format_args!(
            "each of the {} killed workers was reaped with SIGKILL status and replaced by a new process",
            kills.len()
        ),
    );
    let once_ok = got.results[7] == Some(Ok(tasks[7].expected()));
    report::retry_outcome(&mut lab, &got, once_ok);
    lab.check(
        "retried_once",
        once_ok && got.results[11] == Some(Err(2)),
        "the task killed once succeeded on its retry; the task killed twice was given up after exactly 2 attempts",
    );
    let (right, lost) = score(&tasks, &got);
    report::map_after_crash(&mut lab, &got, tasks.len(), right, lost);
    lab.check(
        "map_exact_after_crash",
        got.results.len() == tasks.len() && right == tasks.len() - 1 && lost == 0 && got.duplicates == 0,
        "with workers killed mid-task, map still returned exactly one outcome per input, in order",
    );
    stop_if_stuck(&mut lab, &got, args.deadline_ms);

    lab.section("4. A bounded queue: back-pressure, poison pills, fairness");
    queue_section(&mut lab, &args);

    lab.section("5. The same job three ways");
    three_ways(&mut lab, &mut pool, nworkers, args.tasks as usize, args.python);

    lab.section("6. Shutdown: a poison pill to each worker");
    let ended = pool.shutdown();
    let (workers, mut clean) = (ended.len(), 0);
    for (pid, status, in_time) in ended {
        let gone = !procfacts::exists(pid.as_raw());
        report::worker_exit(&mut lab, pid, status, in_time, gone);
        clean += (status.code() == Some(0) && in_time && gone) as usize;
    }
    lab.check(
        "pool_shutdown",
        clean == workers,
        format_args!("{clean} of {workers} workers read their STOP pill, exited 0 and were reaped"),
    );
    lab.finish()
}

/// A map that heard nothing for the deadline leaves tasks in a stuck worker: the pool
/// cannot be trusted for the sections after it, so the lab ends here (exit 3).
fn stop_if_stuck(lab: &mut Lab, got: &MapResult, deadline_ms: u64) {
    if got.timed_out {
        lab.not_observed(
            "map_finished",
            format_args!("map heard nothing for {deadline_ms} ms with {} tasks left: a task was lost or a worker is stuck", got.left),
        );
    }
}

fn queue_section(lab: &mut Lab, args: &Args) {
    let (consumers, hold_ms) = (args.consumers as usize, args.hold_ms);
    let unbounded = proclab::test_removes("unbounded_queue"); // tests only: never full
    let lost_pill = proclab::test_removes("lost_queue_pill"); // tests only
    let lab_pid = nix::unistd::getpid().as_raw();
    let board = shared::<QueueBoard>();
    // ANCHOR: queue
    // The queue is a pipe, shrunk to one page: it holds 4096 / 16 = 256 messages.
    let (q_r, q_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2");
    if !unbounded {
        // SAFETY: fcntl on our own pipe.
        unsafe { libc::fcntl(q_w.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    }
    // SAFETY: fcntl on our own pipe.
    let cap = unsafe { libc::fcntl(q_w.as_raw_fd(), libc::F_GETPIPE_SZ) };
    let (gate_r, gate_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // consumers wait here for the lab
    let (queue, gate) = (q_r.as_raw_fd(), gate_r.as_raw_fd());
    let not_mine = [q_w.as_raw_fd(), gate_w.as_raw_fd()];
    let mut consumer_pids = Vec::new();
    for k in 0..consumers {
        flush_stdout();
        // SAFETY: the child only calls read, close, _exit and atomics on shared memory.
        match unsafe { fork() }.or_die("fork") {
            ForkResult::Child => {
                die_with_parent(lab_pid); // even if the lab is killed with SIGKILL
                consumer(k, queue, gate, not_mine, &board.consumers[k])
            }
            ForkResult::Parent { child } => {
                cleanup::track(child);
                consumer_pids.push(child);
            }
        }
    }
    // ANCHOR_END: queue
    let pills = consumers - lost_pill as usize;
    flush_stdout();
    // SAFETY: the child only calls write, clock_gettime, _exit and atomics on shared memory.
    let producer = match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            die_with_parent(lab_pid);
            producer(q_w.as_raw_fd(), pills, board)
        }
        ForkResult::Parent { child } => child,
    };
    cleanup::track(producer);
    // The lab closes the children's ends, and keeps q_r to count the queued bytes.
    drop((q_w, gate_r));
    let cap = if cap > 0 { cap as u64 } else { 65536 };

    // ANCHOR: backpressure
    let full = procfacts::poll_until(args.deadline(), || {
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes the number of unread bytes in the pipe into `queued`.
        unsafe { libc::ioctl(q_r.as_raw_fd(), libc::FIONREAD, &mut queued) };
        let state = procfacts::state(producer.as_raw())?;
        if state == 'S' && queued as u64 == cap {
            return Some(Some((state, queued as u64, now_ns())));
        }
        // Everything sent and the queue never full: it will not fill now.
        (board.sent.load(Ordering::Acquire) == QUEUE_MESSAGES).then_some(None)
    })
    .flatten();
    let sent = board.sent.load(Ordering::Acquire);
    // Just asleep, a task may still be on its CPU, and wchan reads 0: look again (bounded).
    let wchan = procfacts::poll_until(Duration::from_secs(1), || {
        procfacts::wchan(producer.as_raw())
    });
    // ANCHOR_END: backpressure
    let (state, queued, full_at) = full.unwrap_or(('?', 0, now_ns()));
    let wchan = wchan.unwrap_or_else(|| "?".into());
    report::back_pressure(lab, producer, state, &wchan, (queued, cap, sent));
    if !lab.stepping() && hold_ms > 0 {
        say!("the consumers stay closed out for {hold_ms} ms: try `cat /proc/{producer}/wchan` (or use --step)");
        std::thread::sleep(Duration::from_millis(hold_ms)); // only so a person can look
    }
    let still = board.sent.load(Ordering::Acquire);
    let closed_ns = now_ns() - full_at; // how long the queue stayed full, seen from here
                                        // SAFETY: write to our own pipe: one byte per consumer opens the gate.
    let opened = unsafe {
        libc::write(
            gate_w.as_raw_fd(),
            [1u8; MAX_CONSUMERS].as_ptr().cast(),
            consumers,
        )
    };
    drop(gate_w);

    let (pstatus, _) = reap_or_kill(producer, args.deadline());
    let blocked_ns = board.longest_write_ns.load(Ordering::Acquire);
    report::producer_blocked(lab, still, blocked_ns, closed_ns, pstatus, opened);
    lab.check(
        "back_pressure",
        state == 'S' && queued == cap && sent == cap / MSG as u64 && still == sent && blocked_ns >= closed_ns,
        "with the queue full the producer slept inside write(2) and sent nothing more until consumers took messages",
    );

    // ANCHOR: pills
    let mut counts = Vec::new(); // messages per consumer, for the table
    let (mut exits, mut taken_sum, mut seq_sum, mut torn) = (0, 0, 0, 0);
    for (k, pid) in consumer_pids.iter().enumerate() {
        let (status, _) = reap_or_kill(*pid, args.deadline()); // each consumer's end
        let c = &board.consumers[k];
        let (taken, pill) =
            (c.taken.load(Ordering::Acquire), c.pill.load(Ordering::Acquire));
        exits += (status.code() == Some(0) && pill == 1) as usize;
        (taken_sum, seq_sum) =
            (taken_sum + taken, seq_sum + c.seq_sum.load(Ordering::Acquire));
        torn += c.torn.load(Ordering::Acquire);
        // ANCHOR_END: pills
        report::consumer_exit(lab, *pid, status, pill, taken);
        counts.push((*pid, taken));
    }
    lab.check(
        "poison_pill_all",
        exits == consumers,
        format_args!("{exits} of {consumers} consumers read a poison pill after the last message and exited 0"),
    );
    let want_sum = QUEUE_MESSAGES * (QUEUE_MESSAGES - 1) / 2;
    report::queue_totals(lab, QUEUE_MESSAGES, taken_sum, seq_sum, want_sum, torn);
    lab.check(
        "queue_no_loss",
        taken_sum == QUEUE_MESSAGES && seq_sum == want_sum && torn == 0,
        "every message was taken exactly once: 16-byte writes and reads on a pipe are never split",
    );
    report::fairness(lab, &counts, QUEUE_MESSAGES);
}

// ANCHOR: producer
/// The producer, after fork. SAFETY (every unsafe here): write, clock_gettime, atomics, _exit.
fn producer(queue: RawFd, pills: usize, board: &QueueBoard) -> ! {
    for seq in 0..QUEUE_MESSAGES {
        let t0 = now_ns();
        write_all(queue, &message(DATA, seq)); // blocks while the queue is full
        board.longest_write_ns.fetch_max(now_ns() - t0, Ordering::AcqRel);
        board.sent.fetch_add(1, Ordering::AcqRel);
    }
    for _ in 0..pills {
        write_all(queue, &message(PILL, 0)); // one pill per consumer, after all the work
    }
    unsafe { libc::_exit(0) }
}
// ANCHOR_END: producer

// ANCHOR: consumer
/// A consumer, after fork. SAFETY (every unsafe here): close, read, write, atomics, _exit.
fn consumer(
    k: usize,
    queue: RawFd,
    gate: RawFd,
    close: [RawFd; 2],
    me: &ConsumerBoard,
) -> ! {
    for fd in close {
        unsafe { libc::close(fd) }; // not a writer: EOF must mean the producer is gone
    }
    let mut go = [0u8; 1];
    // SAFETY: read into a stack buffer; blocks until the lab opens the gate.
    unsafe { libc::read(gate, go.as_mut_ptr().cast(), 1) };
    let mut m = [0u8; MSG];
    loop {
        // SAFETY: read exactly one message into a stack buffer.
        let n = unsafe { libc::read(queue, m.as_mut_ptr().cast(), MSG) };
        if n != MSG as isize {
            me.torn.fetch_add((n > 0) as u32, Ordering::AcqRel);
            unsafe { libc::_exit(1) } // EOF before a pill, or half a message
        }
        let kind = u32::from_le_bytes([m[4], m[5], m[6], m[7]]);
        if kind == PILL {
            me.pill.store(1, Ordering::Release);
            say_as!("consumer", "{k}: poison pill, exiting");
            unsafe { libc::_exit(0) }
        }
        let seq = u64::from_le_bytes(m[8..16].try_into().unwrap_or([0; 8]));
        work(seq, CONSUMER_ROUNDS); // a few µs of work per message
        me.taken.fetch_add(1, Ordering::AcqRel);
        me.seq_sum.fetch_add(seq, Ordering::AcqRel);
    }
}
// ANCHOR_END: consumer

fn three_ways(
    lab: &mut Lab,
    pool: &mut ProcPool,
    nworkers: usize,
    ntiny: usize,
    python: PythonMode,
) {
    let threads = ThreadPool::start(nworkers);
    let rayon = rayon::ThreadPoolBuilder::new().num_threads(nworkers).build();
    let rayon = rayon.unwrap_or_else(|e| {
        proclab::die(&format!("rayon pool: {e}"), nix::errno::Errno::EAGAIN)
    });
    let heavy: Vec<Task> = (0..64).map(Task::heavy).collect();
    let tiny: Vec<Task> = (0..ntiny as u64).map(Task::tiny).collect();
    let mut table = report::ThreeWays::new(nworkers);
    let mut all_agree = true;
    for (label, tasks) in [("tiny", &tiny), ("heavy", &heavy)] {
        // ANCHOR: three
        let (serial, want) =
            timed(3, || tasks.iter().map(|t| work(t.x, t.rounds)).collect());
        let (procs, a) = timed(3, || pool.map(tasks).values());
        let (thr, b) = timed(3, || threads.map(tasks));
        let (ray, c) = timed(3, || rayon_map(&rayon, tasks));
        // ANCHOR_END: three
        all_agree &= a == want && b == want && c == want;
        table.add(label, tasks.len(), [serial, procs, thr, ray]);
    }
    let py = match python {
        PythonMode::Never => Py::Skipped("--python never".into()),
        PythonMode::Auto => run_python(lab, ntiny, nworkers),
    };
    let tiny_sum = tiny.iter().fold(0u64, |s, t| s.wrapping_add(t.expected()));
    table.python(lab, &py, ntiny, nworkers, tiny_sum);
    table.held(lab);
    table.table(lab);
    lab.check(
        "three_ways_agree",
        all_agree,
        "the process pool, the thread pool and rayon returned the serial results, tiny and heavy",
    );
}

// ANCHOR: python
fn run_python(lab: &mut Lab, tasks: usize, workers: usize) -> Py {
    use std::os::unix::process::CommandExt;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/book/scripts/pool_mp.py");
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(script)
        .args(["--tasks", &tasks.to_string(), "--workers", &workers.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let me = nix::unistd::getpid().as_raw();
    // SAFETY: runs in the forked child before exec: prctl, getppid and _exit only.
    unsafe {
        cmd.pre_exec(move || {
            die_with_parent(me); // python3 dies with the lab, even by SIGKILL
            Ok(())
        })
    };
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Py::Skipped(python::MISSING.into())
        }
        Err(e) => return Py::Failed(format!("cannot run python3: {e}")),
    };
    let pid = Pid::from_raw(child.id() as i32);
    // Killed on every way out; its Pool workers follow through their own PDEATHSIG.
    cleanup::track(pid);
    // ANCHOR_END: python
    report::python_started(lab, pid);
    python::collect(child)
}
