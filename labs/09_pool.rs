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

use clap::{Parser, ValueEnum};
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, pipe2, ForkResult, Pid};
use proclab::measure::fmt_duration;
use proclab::procfacts;
use proclab::{cleanup, flush_stdout, say, say_as, Common, Lab, OrDie, Stopwatch, Watchdog};
use serde_json::json;
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A process pool built from fork, pipes and waitpid, compared with threads, rayon and Python.
#[derive(Parser)]
#[command(name = "pool", version)]
struct Args {
    /// Worker processes in the pool (and threads in the thread pools).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    workers: u32,
    /// Tasks in flight per worker: 1 is pure on-demand, more hides the hand-off latency.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    depth: u32,
    /// Tiny tasks in the timing (section 5), also given to Python.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(100..=200_000))]
    tasks: u32,
    /// Consumers of the bounded queue (section 4).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=16))]
    consumers: u32,
    /// How long the queue stays full with the producer blocked, in ms (to look at it with ps).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    hold: u64,
    /// Time Python's multiprocessing.Pool.map on the same tasks: when python3 is on PATH, or never.
    #[arg(long, value_enum, default_value_t = PythonMode::Auto)]
    python: PythonMode,
    #[command(flatten)]
    common: Common,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PythonMode {
    Auto,
    Never,
}

// ---------------------------------------------------------------------------------------
// The task: the same pure function in the process pool, the thread pools and Python.

/// One round of splitmix64: a few ns of arithmetic, no memory. The Python script has the same.
pub fn mix(z: u64) -> u64 {
    let z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `rounds` rounds of `mix`: `work(x, 1)` is the tiny task, many rounds a CPU-heavy one.
pub fn work(x: u64, rounds: u32) -> u64 {
    let mut z = x;
    for _ in 0..rounds {
        z = mix(std::hint::black_box(z));
    }
    z
}

/// What a worker does with a task besides computing it: the lab's ways of misbehaving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal = 0,
    /// Sleeps `SLOW` first.
    Slow = 1,
    /// Hangs on its first attempt (the lab kills the worker), runs normally on the retry.
    CrashOnce = 2,
    /// Hangs on every attempt: the lab kills every worker that takes it.
    CrashAlways = 3,
}

const SLOW: Duration = Duration::from_millis(300);
/// A hanging task gives up hanging after this long, so a lab whose killer failed still ends.
const HANG: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
pub struct Task {
    pub x: u64,
    pub rounds: u32,
    pub mode: Mode,
}

impl Task {
    pub fn tiny(x: u64) -> Task {
        Task {
            x,
            rounds: 1,
            mode: Mode::Normal,
        }
    }
    pub fn expected(&self) -> u64 {
        work(self.x, self.rounds)
    }
}

/// True when a task in `mode` hangs on attempt `attempt` (the worker decides; the killer agrees).
pub fn hangs(mode: Mode, attempt: u32) -> bool {
    mode == Mode::CrashAlways || (mode == Mode::CrashOnce && attempt == 1)
}

// ---------------------------------------------------------------------------------------
// Messages on a pipe. A pipe is a byte stream with no boundaries: each message starts with
// its length, so the reader knows where it ends, however the bytes were split by read(2).

const TASK: u32 = 1;
const RESULT: u32 = 2;
const STOP: u32 = 3;
const BODY: usize = 32;
const FRAME: usize = 4 + BODY;

/// One message: a task (master to worker), a result (worker to master) or a STOP pill.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct Frame {
    pub kind: u32,
    pub attempt: u32,
    pub id: u64,
    /// The task's input, or the result's value.
    pub value: u64,
    pub rounds: u32,
    pub mode: u32,
}

impl Frame {
    fn task(id: usize, attempt: u32, t: &Task) -> Frame {
        let (id, value, rounds, mode) = (id as u64, t.x, t.rounds, t.mode as u32);
        Frame {
            kind: TASK,
            attempt,
            id,
            value,
            rounds,
            mode,
        }
    }
    fn result(id: u64, attempt: u32, value: u64) -> Frame {
        Frame {
            kind: RESULT,
            attempt,
            id,
            value,
            ..Frame::default()
        }
    }
    /// The length prefix, then the struct's bytes as they are in memory (both ends are the
    /// same program on the same machine).
    fn encode(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&(BODY as u32).to_ne_bytes());
        // SAFETY: Frame is repr(C), 32 bytes of integers without padding.
        let bytes: &[u8; BODY] = unsafe { &*(self as *const Frame).cast() };
        out[4..FRAME].copy_from_slice(bytes);
    }
    fn decode(body: &[u8]) -> Frame {
        assert!(body.len() >= BODY);
        // SAFETY: BODY bytes are there; every bit pattern is a valid Frame (integers only).
        unsafe { std::ptr::read_unaligned(body.as_ptr().cast()) }
    }
}

/// A fixed receive buffer that cuts a byte stream into frames. No heap: a worker keeps one
/// on its stack after fork.
pub struct Frames {
    buf: [u8; 4096],
    start: usize,
    end: usize,
}

impl Frames {
    pub const fn new() -> Frames {
        Frames {
            buf: [0; 4096],
            start: 0,
            end: 0,
        }
    }

    /// One read(2) from `fd` into the free space: bytes read, 0 at EOF, -1 on error.
    pub fn fill(&mut self, fd: RawFd) -> isize {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            let free = &mut self.buf[self.end..];
            // SAFETY: the pointer and length describe the free part of our buffer.
            let n = unsafe { libc::read(fd, free.as_mut_ptr().cast(), free.len()) };
            // SAFETY: reading errno is async-signal-safe.
            if n < 0 && unsafe { *libc::__errno_location() } == libc::EINTR {
                continue;
            }
            if n > 0 {
                self.end += n as usize;
            }
            return n;
        }
    }

    /// The next whole frame in the buffer, if there is one. A bad length gives kind 0.
    /// True if a whole frame is waiting in the buffer.
    pub fn has_frame(&self) -> bool {
        let have = &self.buf[self.start..self.end];
        have.len() >= 4 && have.len() >= 4 + u32::from_ne_bytes([have[0], have[1], have[2], have[3]]) as usize
    }

    pub fn pop(&mut self) -> Option<Frame> {
        let have = &self.buf[self.start..self.end];
        if have.len() < 4 {
            return None;
        }
        let len = u32::from_ne_bytes([have[0], have[1], have[2], have[3]]) as usize;
        if len != BODY {
            self.start = self.end; // not our protocol: drop it, report a bad frame
            return Some(Frame::default());
        }
        if have.len() < 4 + len {
            return None; // the rest of this frame is still in the pipe
        }
        let f = Frame::decode(&have[4..4 + len]);
        self.start += 4 + len;
        Some(f)
    }
}

impl Default for Frames {
    fn default() -> Self {
        Self::new()
    }
}

/// write(2) all of `bytes`, retrying on EINTR and short writes. Async-signal-safe.
fn write_all(fd: RawFd, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe a live slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            // SAFETY: reading errno is async-signal-safe.
            if unsafe { *libc::__errno_location() } == libc::EINTR {
                continue;
            }
            return false;
        }
        bytes = &bytes[n as usize..];
    }
    true
}

/// In a child right after fork: be killed if the lab dies, even by SIGKILL (no cleanup runs
/// then). prctl and getppid are async-signal-safe.
fn die_with_parent(parent: i32) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) and getppid only touch this process's own state.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != parent {
            libc::_exit(1); // the parent died before prctl: too late to be told
        }
    }
}

/// Sleep with nanosleep(2) (async-signal-safe, unlike anything that may allocate).
fn nap(d: Duration) {
    let ts = libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    };
    // SAFETY: nanosleep only reads `ts`.
    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
}

/// Monotonic clock in ns, with clock_gettime(2) (async-signal-safe).
fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Anonymous shared memory holding a zeroed `T` (atomics only), seen by every child forked
/// after it. Never unmapped: it lives as long as the lab.
fn shared<T>() -> &'static T {
    let len = std::num::NonZeroUsize::new(std::mem::size_of::<T>()).expect("non-zero size");
    use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};
    let prot = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
    // SAFETY: a fresh anonymous mapping, zero-filled; T is made of atomics, valid when zero.
    let p = unsafe { mmap_anonymous(None, len, prot, MapFlags::MAP_SHARED) }.or_die("mmap");
    // SAFETY: the mapping is large enough, page-aligned, zeroed and never unmapped.
    unsafe { &*p.as_ptr().cast::<T>() }
}

// ---------------------------------------------------------------------------------------
// The process pool.

pub const MAX_WORKERS: usize = 64;

/// Who is working on what, in shared memory: `pid << 32 | (task + 1) << 4 | attempt`, or
/// `pid << 32` when idle. One word, so a reader never pairs a pid with another's task.
pub struct Board {
    pub slots: [AtomicU64; MAX_WORKERS],
}

pub fn unpack(word: u64) -> (i32, Option<(usize, u32)>) {
    let pid = (word >> 32) as i32;
    let task = (word & 0xffff_fff0) >> 4;
    (pid, (task > 0).then(|| (task as usize - 1, (word & 0xf) as u32)))
}

/// A task's outcome: its value, or the number of attempts after which it was given up.
pub type Outcome = Result<u64, u32>;

/// A worker that died during a map and was replaced: (slot, its pid, its wait status, the
/// task and attempt it was running, the new worker's pid, the new worker's ppid in /proc).
#[derive(Clone, Debug)]
pub struct Replacement(
    pub usize,
    pub Pid,
    pub WaitStatus,
    pub Option<(usize, u32)>,
    pub Pid,
    pub i32,
);

/// One worker as the master sees it.
pub struct Worker {
    pub pid: Pid,
    tasks: OwnedFd,   // write end: master -> worker
    results: OwnedFd, // read end: worker -> master
    inbox: Box<Frames>,
    inflight: VecDeque<(usize, u32)>, // (task, attempt), in the order the worker runs them
    pub done: u64,
}

pub struct ProcPool {
    master: i32,
    pub workers: Vec<Worker>,
    board: &'static Board,
    depth: usize,
    pub replacements: Vec<Replacement>,
}

/// What `map` returns: one outcome per input, in input order (None: lost, which must not happen).
pub struct MapResult {
    pub results: Vec<Option<Outcome>>,
    /// Results for a task that already had one.
    pub duplicates: usize,
    /// For each task, how many results had arrived before its own.
    pub rank: Vec<usize>,
    pub timed_out: bool,
    left: usize,
    arrived: usize,
}

impl MapResult {
    fn new(n: usize) -> MapResult {
        let (results, rank) = (vec![None; n], vec![0; n]);
        MapResult {
            results,
            duplicates: 0,
            rank,
            timed_out: false,
            left: n,
            arrived: 0,
        }
    }

    /// File the outcome of task `id` at its own index: that is what puts results in order.
    fn put(&mut self, id: usize, outcome: Outcome) {
        if self.results[id].is_some() {
            self.duplicates += 1;
            return;
        }
        self.results[id] = Some(outcome);
        self.rank[id] = self.arrived;
        self.arrived += 1;
        self.left -= 1;
    }

    pub fn values(&self) -> Vec<u64> {
        let value = |r: &Option<Outcome>| r.and_then(|o| o.ok()).unwrap_or(0);
        self.results.iter().map(value).collect()
    }
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
            if !write_all(results, &outbox[..std::mem::take(&mut ready)]) || inbox.fill(tasks) <= 0 {
                unsafe { libc::_exit(1) } // EPIPE or EOF: the master is gone, so are we
            }
            continue;
        };
        if f.kind != TASK {
            unsafe { libc::_exit(if f.kind == STOP { 0 } else { 2 }) } // STOP: the poison pill
        }
        if !inbox.has_frame() && !write_all(results, &outbox[..std::mem::take(&mut ready)]) {
            unsafe { libc::_exit(1) } // the last task on hand: results first, so more can come
        }
        board.store(me | (f.id + 1) << 4 | u64::from(f.attempt), Ordering::Release); // on show
        let value = run_task(&f);
        board.store(me, Ordering::Release);
        Frame::result(f.id, f.attempt, value).encode(&mut outbox[ready..ready + FRAME]);
        ready += FRAME;
    }
}
// ANCHOR_END: worker

fn run_task(f: &Frame) -> u64 {
    let mode = match f.mode {
        1 => Mode::Slow,
        2 => Mode::CrashOnce,
        3 => Mode::CrashAlways,
        _ => Mode::Normal,
    };
    if mode == Mode::Slow {
        nap(SLOW);
    }
    if hangs(mode, f.attempt) {
        let until = now_ns() + HANG.as_nanos() as u64;
        while now_ns() < until {
            nap(Duration::from_millis(1)); // asleep (state S) until the lab kills us
        }
    }
    work(f.value, f.rounds)
}

fn pollin(fd: &OwnedFd) -> libc::pollfd {
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }
}

impl Worker {
    fn new(pid: Pid, tasks: OwnedFd, results: OwnedFd, depth: usize) -> Worker {
        let (inbox, inflight) = (Box::default(), VecDeque::with_capacity(depth));
        Worker {
            pid,
            tasks,
            results,
            inbox,
            inflight,
            done: 0,
        }
    }

    /// Every whole result in the inbox, filed under its task id.
    fn take_results(&mut self, out: &mut MapResult) {
        while let Some(f) = self.inbox.pop() {
            self.inflight.pop_front(); // results come back in the order the tasks went
            self.done += 1;
            out.put(f.id as usize, Ok(f.value));
        }
    }
}

impl ProcPool {
    /// Fork `n` workers once; each may hold `depth` tasks at a time.
    pub fn start(n: usize, depth: usize) -> ProcPool {
        let board = shared::<Board>();
        let master = nix::unistd::getpid().as_raw();
        let mut pool = ProcPool {
            master,
            workers: Vec::with_capacity(n),
            board,
            depth,
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
                for fd in others.iter().chain(&[task_w.as_raw_fd(), res_r.as_raw_fd()]) {
                    unsafe { libc::close(*fd) }; // the master's ends: EOF must mean "peer died"
                }
                say_as!("worker", "ready in slot {slot}");
                worker_loop(task_r.as_raw_fd(), res_w.as_raw_fd(), &self.board.slots[slot])
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
    fn refill(&mut self, w: usize, tasks: &[Task], queue: &mut VecDeque<(usize, u32)>) {
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
        let mut queue: VecDeque<(usize, u32)> = (0..tasks.len()).map(|id| (id, 1)).collect(); // (task, attempt)
        while out.left > 0 {
            for w in 0..self.workers.len() {
                self.refill(w, tasks, &mut queue); // on demand: at most `depth` per worker
            }
            let mut fds: Vec<libc::pollfd> = self.workers.iter().map(|w| pollin(&w.results)).collect();
            // SAFETY: fds is a live array of pollfd. Sleeps until a worker wrote results or died.
            if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 20_000) } == 0 {
                out.timed_out = true; // nothing for 20 s: give up rather than hang
                break;
            }
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
    fn replace(&mut self, w: usize, queue: &mut VecDeque<(usize, u32)>, out: &mut MapResult) {
        let old = self.workers[w].pid;
        let status = waitpid(old, None).or_die("waitpid"); // how it ended: Signaled(SIGKILL)?
        cleanup::forget(old);
        // What it was running, from the board it wrote in shared memory (None if it was idle).
        let (pid, running) = unpack(self.board.slots[w].load(Ordering::Acquire));
        let running = running.filter(|_| pid == old.as_raw());
        for t in std::mem::take(&mut self.workers[w].inflight).into_iter().rev() {
            if Some(t) != running {
                queue.push_front(t); // not started, or done but unsent: back as they were
            }
        }
        match running {
            Some((id, 1)) => queue.push_front((id, 2)), // retried once, first in line
            Some((id, attempt)) => out.put(id, Err(attempt)), // died again: given up
            None => {}
        }
        let new = self.spawn(w);
        let ppid = procfacts::ppid(new.pid.as_raw()).unwrap_or(0); // the kernel's word: our child
        self.replacements
            .push(Replacement(w, old, status, running, new.pid, ppid));
        self.workers[w] = new; // the old pipes are closed here
    }
    // ANCHOR_END: replace

    // ANCHOR: shutdown
    /// A STOP pill to each worker (read after any task before it), then reap them all.
    pub fn shutdown(self) -> Vec<(Pid, WaitStatus)> {
        let mut pill = [0u8; FRAME];
        Frame {
            kind: STOP,
            ..Frame::default()
        }
        .encode(&mut pill);
        for w in &self.workers {
            write_all(w.tasks.as_raw_fd(), &pill); // the poison pill
        }
        let mut ended = Vec::new();
        for w in self.workers {
            let status = waitpid(w.pid, None).or_die("waitpid"); // Exited(pid, 0) after STOP
            cleanup::forget(w.pid);
            ended.push((w.pid, status));
        }
        ended
    }
    // ANCHOR_END: shutdown
}

// ---------------------------------------------------------------------------------------
// The same job with threads: a thread pool over a crossbeam channel, and rayon.

pub struct ThreadPool {
    tasks: Option<crossbeam::channel::Sender<(usize, Task)>>,
    results: crossbeam::channel::Receiver<(usize, u64)>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

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
        ThreadPool {
            tasks: Some(task_tx),
            results: res_rx,
            threads,
        }
    }
    // ANCHOR_END: threadpool

    pub fn map(&self, tasks: &[Task]) -> Vec<u64> {
        let tx = self.tasks.as_ref().expect("running");
        for (id, t) in tasks.iter().enumerate() {
            tx.send((id, *t)).expect("workers alive");
        }
        let mut out = vec![0; tasks.len()];
        for _ in 0..tasks.len() {
            let (id, v) = self.results.recv().expect("workers alive");
            out[id] = v; // back in input order
        }
        out
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.tasks.take(); // closing the channel ends every thread's loop
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

pub fn rayon_map(pool: &rayon::ThreadPool, tasks: &[Task]) -> Vec<u64> {
    use rayon::prelude::*;
    pool.install(|| tasks.par_iter().map(|t| work(t.x, t.rounds)).collect()) // work stealing
}

// ---------------------------------------------------------------------------------------
// The bounded queue (section 4): one producer, several consumers, one pipe of one page.

const MSG: usize = 16;
const DATA: u32 = 1;
const PILL: u32 = 2;
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

fn message(kind: u32, seq: u64) -> [u8; MSG] {
    let mut m = [0u8; MSG];
    m[0..4].copy_from_slice(&12u32.to_le_bytes()); // length of what follows
    m[4..8].copy_from_slice(&kind.to_le_bytes());
    m[8..16].copy_from_slice(&seq.to_le_bytes());
    m
}

// ---------------------------------------------------------------------------------------

fn main() {
    let args = Args::parse();
    let mut lab = Lab::start("pool", &args.common);
    let me = nix::unistd::getpid();
    let (nworkers, depth) = (args.workers as usize, args.depth as usize);

    lab.section("1. Fork the workers once");
    let mut pool = ProcPool::start(nworkers, depth);
    let mut alive = 0;
    for w in &pool.workers {
        let pid = w.pid.as_raw();
        // An idle worker sleeps in read(2) on its task pipe: wait (bounded) until it is there.
        let state = procfacts::wait_for_state(pid, &['S'], Duration::from_secs(5)).unwrap_or('?');
        let wchan = procfacts::poll_until(Duration::from_secs(1), || procfacts::wchan(pid)).unwrap_or_default();
        let ppid = procfacts::ppid(pid).unwrap_or(0);
        lab.observe(
            "worker",
            json!({"pid": pid, "ppid": ppid, "state": state.to_string(), "wchan": wchan}),
            format_args!(
                "worker {pid}: ppid {ppid}, state {}, waiting in {wchan}",
                procfacts::state_name(state)
            ),
        );
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
    let right = (tasks.iter().zip(&got.results))
        .filter(|(t, r)| **r == Some(Ok(t.expected())))
        .count();
    let lost = got.results.iter().filter(|r| r.is_none()).count();
    // ANCHOR_END: exact
    lab.observe(
        "map",
        json!({"inputs": tasks.len(), "results": got.results.len(), "right": right, "lost": lost, "duplicates": got.duplicates, "ms": took.as_secs_f64() * 1e3}),
        format_args!(
            "{} inputs -> {} results, {right} equal to the serial answer at their own index, {lost} lost, {} duplicates, in {}",
            tasks.len(),
            got.results.len(),
            got.duplicates,
            fmt_duration(took)
        ),
    );
    lab.check(
        "map_exact",
        got.results.len() == tasks.len() && right == tasks.len() && lost == 0 && got.duplicates == 0,
        "map returned exactly one result per input, in input order: no loss, no duplicate",
    );
    let slow_rank = got.rank[3];
    lab.observe(
        "on_demand",
        json!({"slow_task": 3, "slow_ms": SLOW.as_millis() as u64, "finished_before_it": slow_rank, "tasks": tasks.len()}),
        format_args!(
            "task 3 slept {} ms; {slow_rank} of the other {} results arrived before it",
            SLOW.as_millis(),
            tasks.len() - 1
        ),
    );
    lab.check(
        "on_demand",
        slow_rank >= tasks.len() / 2,
        "a slow task held up only its own worker: most later tasks finished before it",
    );
    let rows: Vec<Vec<String>> = pool
        .workers
        .iter()
        .map(|w| {
            vec![
                w.pid.to_string(),
                w.done.to_string(),
                format!("{:.1}%", 100.0 * w.done as f64 / tasks.len() as f64),
            ]
        })
        .collect();
    lab.table("tasks_per_worker", &["worker pid", "tasks", "share"], &rows);

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
            while !stop.load(Ordering::Acquire) {
                for word in &board.slots {
                    let (pid, Some((task, attempt))) = unpack(word.load(Ordering::Acquire)) else {
                        continue;
                    };
                    if tasks.get(task).is_some_and(|t| hangs(t.mode, attempt)) && !kills.iter().any(|k| k.0 == pid) {
                        let state = procfacts::state(pid).unwrap_or('?');
                        kill(Pid::from_raw(pid), Signal::SIGKILL).or_die("kill"); // in the middle of the task
                        kills.push((pid, task, attempt, state));
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
    for &(pid, task, attempt, state) in &kills {
        lab.observe(
            "killed",
            json!({"pid": pid, "task": task, "attempt": attempt, "state": state.to_string()}),
            format_args!("SIGKILL to worker {pid} while it ran task {task} (attempt {attempt}, state {state})"),
        );
    }
    let (mut reaped_killed, mut replaced) = (0, 0);
    for Replacement(slot, old, status, running, new, ppid) in &pool.replacements {
        let sig = match status {
            WaitStatus::Signaled(_, s, _) => Some(*s as i32),
            _ => None,
        };
        reaped_killed += (kills.iter().any(|k| k.0 == old.as_raw()) && sig == Some(libc::SIGKILL)) as usize;
        let (task, attempt) = (running.map(|t| t.0), running.map(|t| t.1));
        lab.observe(
            "died",
            json!({"slot": slot, "pid": old.as_raw(), "signal": sig, "status": format!("{status:?}"), "task": task, "attempt": attempt}),
            format_args!(
                "EOF on slot {slot}'s result pipe; waitpid({old}) -> {status:?}; it was running task {}",
                task.map_or("none".into(), |t| t.to_string())
            ),
        );
        match running {
            Some((task, 1)) => lab.observe(
                "retried",
                json!({"task": task, "attempt": 2}),
                format_args!("task {task} put back first in the queue for attempt 2"),
            ),
            Some((task, attempts)) => lab.observe(
                "gave_up",
                json!({"task": task, "attempts": attempts}),
                format_args!("task {task} killed its worker on {attempts} attempts: given up, not retried again"),
            ),
            None => {}
        }
        replaced += (new != old && *ppid == me.as_raw()) as usize;
        lab.observe(
            "replaced",
            json!({"slot": slot, "old": old.as_raw(), "new": new.as_raw(), "ppid": ppid}),
            format_args!("slot {slot}: worker {old} replaced by a new fork, {new} (ppid {ppid})"),
        );
    }
    lab.check(
        "worker_replaced",
        !kills.is_empty() && reaped_killed == kills.len() && replaced == kills.len(),
        format_args!(
            "each of the {} killed workers was reaped with SIGKILL status and replaced by a new process",
            kills.len()
        ),
    );
    let t7 = got.results[7];
    let t11 = got.results[11];
    lab.observe(
        "retry_outcome",
        json!({"once_ok": t7 == Some(Ok(tasks[7].expected())), "always_attempts": t11.and_then(|r| r.err())}),
        format_args!("task 7 (killed once) -> {t7:?}; task 11 (killed every time) -> {t11:?}"),
    );
    lab.check(
        "retried_once",
        t7 == Some(Ok(tasks[7].expected())) && t11 == Some(Err(2)),
        "the task killed once succeeded on its retry; the task killed twice was given up after exactly 2 attempts",
    );
    let right = (tasks.iter().zip(&got.results))
        .filter(|(t, r)| **r == Some(Ok(t.expected())))
        .count();
    let lost = got.results.iter().filter(|r| r.is_none()).count();
    lab.observe(
        "map_after_crash",
        json!({"inputs": tasks.len(), "results": got.results.len(), "right": right, "lost": lost, "duplicates": got.duplicates, "failed": 1}),
        format_args!(
            "{} inputs -> {} results: {right} right, 1 given up, {lost} lost, {} duplicates",
            tasks.len(),
            got.results.len(),
            got.duplicates
        ),
    );
    lab.check(
        "map_exact_after_crash",
        got.results.len() == tasks.len() && right == tasks.len() - 1 && lost == 0 && got.duplicates == 0,
        "with workers killed mid-task, map still returned exactly one outcome per input, in order",
    );

    lab.section("4. A bounded queue: back-pressure, poison pills, fairness");
    queue_section(&mut lab, args.consumers as usize, args.hold);

    lab.section("5. The same job three ways");
    three_ways(&mut lab, &mut pool, nworkers, args.tasks as usize, args.python);

    lab.section("6. Shutdown: a poison pill to each worker");
    let pids: Vec<Pid> = pool.workers.iter().map(|w| w.pid).collect();
    let ended = pool.shutdown();
    let mut clean = 0;
    for (pid, status) in &ended {
        let gone = !procfacts::exists(pid.as_raw());
        lab.observe(
            "worker_exit",
            json!({"pid": pid.as_raw(), "status": format!("{status:?}"), "code": match status { WaitStatus::Exited(_, c) => Some(*c), _ => None }, "gone": gone}),
            format_args!("waitpid({pid}) -> {status:?}; /proc/{pid} {}", if gone { "is gone" } else { "still exists" }),
        );
        clean += (*status == WaitStatus::Exited(*pid, 0) && gone) as usize;
    }
    lab.check(
        "pool_shutdown",
        clean == pids.len(),
        format_args!(
            "{clean} of {} workers read their STOP pill, exited 0 and were reaped",
            pids.len()
        ),
    );
    lab.finish("a process pool built from fork, pipes and waitpid returns exactly one result per input in order, survives workers killed mid-task (replaced, task retried once), and a bounded queue blocks its producer when full")
}

fn queue_section(lab: &mut Lab, consumers: usize, hold_ms: u64) {
    let lab_pid = nix::unistd::getpid().as_raw();
    let board = shared::<QueueBoard>();
    // ANCHOR: queue
    // The queue is a pipe, shrunk to one page: it holds 4096 / 16 = 256 messages.
    let (q_r, q_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2");
    // SAFETY: fcntl on our own pipe.
    let cap = unsafe { libc::fcntl(q_w.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
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
    flush_stdout();
    // SAFETY: the child only calls write, clock_gettime, _exit and atomics on shared memory.
    let producer = match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            die_with_parent(lab_pid);
            producer(q_w.as_raw_fd(), consumers, board)
        }
        ForkResult::Parent { child } => child,
    };
    cleanup::track(producer);
    // The lab closes the children's ends, and keeps q_r to count the queued bytes.
    drop((q_w, gate_r));
    let cap = if cap > 0 { cap as u64 } else { 65536 };
    let breaker = {
        let mut all = consumer_pids.clone();
        all.push(producer);
        move || {
            for p in all {
                let _ = kill(p, Signal::SIGKILL); // a stuck queue must not hang the lab
            }
        }
    };
    let dog = Watchdog::arm(Duration::from_millis(15_000 + hold_ms), breaker);

    // ANCHOR: backpressure
    let full = procfacts::poll_until(Duration::from_secs(10), || {
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes the number of unread bytes in the pipe into `queued`.
        unsafe { libc::ioctl(q_r.as_raw_fd(), libc::FIONREAD, &mut queued) };
        let state = procfacts::state(producer.as_raw())?;
        (state == 'S' && queued as u64 == cap).then_some((state, queued as u64))
    });
    let sent = board.sent.load(Ordering::Acquire);
    // Just asleep, a task may still be on its CPU, and wchan reads 0: look again (bounded).
    let wchan = procfacts::poll_until(Duration::from_secs(1), || procfacts::wchan(producer.as_raw()));
    // ANCHOR_END: backpressure
    let (state, queued) = full.unwrap_or(('?', 0));
    let wchan = wchan.unwrap_or_else(|| "?".into());
    lab.observe(
        "back_pressure",
        json!({"producer": producer.as_raw(), "state": state.to_string(), "wchan": wchan, "queued_bytes": queued, "capacity": cap, "sent": sent, "capacity_messages": cap / MSG as u64}),
        format_args!(
            "queue of {cap} bytes holds {queued} ({} messages); producer {producer} has sent {sent} and is in state {state}, asleep in {wchan}",
            queued / MSG as u64
        ),
    );
    say!("the consumers stay closed out for {hold_ms} ms: try `cat /proc/{producer}/wchan`");
    std::thread::sleep(Duration::from_millis(hold_ms)); // only so a person can look
    let still = board.sent.load(Ordering::Acquire);
    // SAFETY: write to our own pipe: one byte per consumer opens the gate.
    let opened = unsafe { libc::write(gate_w.as_raw_fd(), [1u8; MAX_CONSUMERS].as_ptr().cast(), consumers) };
    drop(gate_w);

    let pstatus = waitpid(producer, None).or_die("waitpid");
    cleanup::forget(producer);
    let blocked_ns = board.longest_write_ns.load(Ordering::Acquire);
    lab.observe(
        "producer_blocked",
        json!({"sent_while_held": still, "longest_write_ms": blocked_ns as f64 / 1e6, "hold_ms": hold_ms, "status": format!("{pstatus:?}"), "gate_bytes": opened}),
        format_args!(
            "after {hold_ms} ms more the producer had still sent {still}; its longest write(2) blocked for {}",
            fmt_duration(Duration::from_nanos(blocked_ns))
        ),
    );
    lab.check(
        "back_pressure",
        state == 'S' && queued == cap && sent == cap / MSG as u64 && still == sent && blocked_ns >= hold_ms * 1_000_000,
        "with the queue full the producer slept inside write(2) and sent nothing more until consumers took messages",
    );

    // ANCHOR: pills
    let mut rows = Vec::new();
    let (mut exits, mut taken_sum, mut seq_sum, mut torn) = (0, 0, 0, 0);
    for (k, pid) in consumer_pids.iter().enumerate() {
        let status = waitpid(*pid, None).or_die("waitpid"); // each consumer's own end
        cleanup::forget(*pid);
        let c = &board.consumers[k];
        let (taken, pill) = (c.taken.load(Ordering::Acquire), c.pill.load(Ordering::Acquire));
        exits += (status == WaitStatus::Exited(*pid, 0) && pill == 1) as usize;
        (taken_sum, seq_sum) = (taken_sum + taken, seq_sum + c.seq_sum.load(Ordering::Acquire));
        torn += c.torn.load(Ordering::Acquire);
        // ANCHOR_END: pills
        lab.observe(
            "consumer_exit",
            json!({"pid": pid.as_raw(), "status": format!("{status:?}"), "pill": pill, "taken": taken}),
            format_args!("consumer {pid} took {taken} messages, read its pill, waitpid -> {status:?}"),
        );
        rows.push(vec![
            pid.to_string(),
            taken.to_string(),
            format!("{:.1}%", 100.0 * taken as f64 / QUEUE_MESSAGES as f64),
        ]);
    }
    let fired = dog.disarm();
    lab.check(
        "poison_pill_all",
        exits == consumers && !fired,
        format_args!("{exits} of {consumers} consumers read a poison pill after the last message and exited 0"),
    );
    let want_sum = QUEUE_MESSAGES * (QUEUE_MESSAGES - 1) / 2;
    lab.observe(
        "queue_totals",
        json!({"sent": QUEUE_MESSAGES, "taken": taken_sum, "seq_sum": seq_sum, "want_seq_sum": want_sum, "torn": torn}),
        format_args!("{QUEUE_MESSAGES} messages sent, {taken_sum} taken, sum of sequence numbers {seq_sum} (want {want_sum}), {torn} torn reads"),
    );
    lab.check(
        "queue_no_loss",
        taken_sum == QUEUE_MESSAGES && seq_sum == want_sum && torn == 0,
        "every message was taken exactly once: 16-byte writes and reads on a pipe are never split",
    );
    lab.table("tasks_per_consumer", &["consumer pid", "messages", "share"], &rows);
    let most = rows.iter().filter_map(|r| r[1].parse::<u64>().ok()).max().unwrap_or(0);
    let least = rows.iter().filter_map(|r| r[1].parse::<u64>().ok()).min().unwrap_or(0);
    lab.observe(
        "fairness",
        json!({"most": most, "least": least, "consumers": consumers, "even_share": QUEUE_MESSAGES / consumers as u64}),
        format_args!(
            "the busiest consumer took {most}, the least busy {least}; an even split is {}",
            QUEUE_MESSAGES / consumers as u64
        ),
    );
}

// ANCHOR: producer
fn producer(queue: RawFd, consumers: usize, board: &QueueBoard) -> ! {
    for seq in 0..QUEUE_MESSAGES {
        let t0 = now_ns();
        write_all(queue, &message(DATA, seq)); // blocks while the queue is full
        board.longest_write_ns.fetch_max(now_ns() - t0, Ordering::AcqRel);
        board.sent.fetch_add(1, Ordering::AcqRel);
    }
    for _ in 0..consumers {
        write_all(queue, &message(PILL, 0)); // one pill per consumer, after all the work
    }
    unsafe { libc::_exit(0) }
}
// ANCHOR_END: producer

// ANCHOR: consumer
fn consumer(k: usize, queue: RawFd, gate: RawFd, close: [RawFd; 2], me: &ConsumerBoard) -> ! {
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

/// Median wall time of `reps` runs of `f`, and the last run's results.
fn timed(reps: usize, mut f: impl FnMut() -> Vec<u64>) -> (Duration, Vec<u64>) {
    let mut times = Vec::new();
    let mut last = Vec::new();
    for _ in 0..reps {
        let sw = Stopwatch::start();
        last = f();
        times.push(sw.elapsed());
    }
    times.sort();
    (times[reps / 2], last)
}

fn three_ways(lab: &mut Lab, pool: &mut ProcPool, nworkers: usize, ntiny: usize, python: PythonMode) {
    let threads = ThreadPool::start(nworkers);
    let rayon = rayon::ThreadPoolBuilder::new().num_threads(nworkers).build();
    let rayon = rayon.unwrap_or_else(|e| proclab::die(&format!("rayon pool: {e}"), nix::errno::Errno::EAGAIN));
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let parallel = nworkers.min(cpus) as f64;
    let heavy: Vec<Task> = (0..64)
        .map(|x| Task {
            x,
            rounds: HEAVY_ROUNDS,
            mode: Mode::Normal,
        })
        .collect();
    let tiny: Vec<Task> = (0..ntiny as u64).map(Task::tiny).collect();
    let mut rows = Vec::new();
    let mut all_agree = true;
    let mut proc_tiny_us = 0.0;
    for (label, tasks) in [("tiny", &tiny), ("heavy", &heavy)] {
        // ANCHOR: three
        let (serial, want) = timed(3, || tasks.iter().map(|t| work(t.x, t.rounds)).collect());
        let (procs, a) = timed(3, || pool.map(tasks).values());
        let (thr, b) = timed(3, || threads.map(tasks));
        let (ray, c) = timed(3, || rayon_map(&rayon, tasks));
        // ANCHOR_END: three
        all_agree &= a == want && b == want && c == want;
        let n = tasks.len() as f64;
        for (name, wall) in [
            ("serial", serial),
            ("process pool", procs),
            ("thread pool (crossbeam)", thr),
            ("rayon", ray),
        ] {
            let per_task = wall.as_secs_f64() / n * 1e6;
            // The hand-off cost: what the pool adds on top of the compute spread over the CPUs.
            let overhead = (wall.as_secs_f64() - serial.as_secs_f64() / parallel) / n * 1e6;
            if name == "process pool" && label == "tiny" {
                proc_tiny_us = per_task;
            }
            rows.push(vec![
                name.to_string(),
                label.to_string(),
                tasks.len().to_string(),
                fmt_duration(wall),
                format!("{per_task:.3}"),
                if name == "serial" {
                    "-".into()
                } else {
                    format!("{:.3}", overhead.max(0.0))
                },
            ]);
        }
    }
    let py = match python {
        PythonMode::Never => Py::Skipped("--python never".into()),
        PythonMode::Auto => run_python(lab, ntiny, nworkers),
    };
    let tiny_sum = tiny.iter().fold(0u64, |s, t| s.wrapping_add(t.expected()));
    match &py {
        Py::Measured {
            per_task_us,
            seconds,
            checksum,
            version,
        } => {
            rows.push(vec![
                format!("python {version} Pool.map chunksize=1"),
                "tiny".into(),
                ntiny.to_string(),
                fmt_duration(Duration::from_secs_f64(*seconds)),
                format!("{per_task_us:.3}"),
                format!("{per_task_us:.3}"),
            ]);
            let ratio = per_task_us / proc_tiny_us.max(1e-9);
            lab.observe(
                "python",
                json!({"status": "measured", "python_per_task_us": per_task_us, "rust_per_task_us": proc_tiny_us, "ratio": ratio, "same_results": *checksum == tiny_sum, "tasks": ntiny, "workers": nworkers}),
                format_args!(
                    "Python {version} Pool.map(chunksize=1): {per_task_us:.2} µs per tiny task; this process pool: {proc_tiny_us:.2} µs, {ratio:.1}x less ({} results)",
                    if *checksum == tiny_sum { "same" } else { "DIFFERENT" }
                ),
            );
        }
        Py::Skipped(why) | Py::Failed(why) => {
            let status = if matches!(py, Py::Skipped(_)) {
                "skipped"
            } else {
                "failed"
            };
            lab.observe(
                "python",
                json!({"status": status, "why": why}),
                format_args!("Python comparison {status}: {why}"),
            );
        }
    }
    lab.table(
        "three_ways",
        &[
            "pool",
            "work",
            "tasks",
            "wall (median of 3)",
            "µs per task",
            "overhead µs per task",
        ],
        &rows,
    );
    lab.check(
        "three_ways_agree",
        all_agree,
        "the process pool, the thread pool and rayon returned the serial results, tiny and heavy",
    );
}

/// Rounds of `mix` in a heavy task (a few hundred µs).
pub const HEAVY_ROUNDS: u32 = 50_000;

enum Py {
    Measured {
        per_task_us: f64,
        seconds: f64,
        checksum: u64,
        version: String,
    },
    Skipped(String),
    Failed(String),
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
    // SAFETY: runs in the forked child before exec: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL); // python3 dies with the lab
            Ok(())
        })
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Py::Skipped("python3 is not on PATH".into()),
        Err(e) => return Py::Failed(format!("cannot run python3: {e}")),
    };
    let pid = Pid::from_raw(child.id() as i32);
    // Killed on every way out; its Pool workers follow through their own PDEATHSIG.
    cleanup::track(pid);
    // ANCHOR_END: python
    lab.observe(
        "python_started",
        json!({"pid": pid.as_raw()}),
        format_args!("python3 {pid} runs book/scripts/pool_mp.py"),
    );
    let status = procfacts::poll_until(Duration::from_secs(60), || child.try_wait().ok().flatten());
    if status.is_none() {
        let _ = child.kill();
    }
    let _ = child.wait();
    cleanup::forget(pid);
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read;
    let _ = child.stdout.take().map(|mut s| s.read_to_string(&mut out));
    let _ = child.stderr.take().map(|mut s| s.read_to_string(&mut err));
    let Some(status) = status else {
        return Py::Failed("python3 took more than 60 s: killed".into());
    };
    let Some(v) = out
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    else {
        let last = err.lines().last().unwrap_or("").to_string();
        return Py::Failed(format!("python3 exited with {status} and printed no figure: {last}"));
    };
    match (v["per_task_us"].as_f64(), v["seconds"].as_f64(), v["checksum"].as_u64()) {
        (Some(per_task_us), Some(seconds), Some(checksum)) => Py::Measured {
            per_task_us,
            seconds,
            checksum,
            version: v["python"].as_str().unwrap_or("3").to_string(),
        },
        _ => Py::Failed(format!("unexpected output from the script: {}", out.trim())),
    }
}
