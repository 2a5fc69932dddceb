//! How the deadlock lab and its children talk. A worker (the lab re-executed with `--role`)
//! prints JSON lines on a pipe and reads "go" on another; a forked lock child says "ready"
//! and waits for "go" with one byte each way. Also the worker's own reports (its wait-for
//! graph's cycle, parking_lot's answer, a fix's counters) and a tiny random generator.

use super::cli::{Args, Role};
use super::waitfor::{Edge, WaitFor};
use clap::ValueEnum;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::{fstat, Mode};
use nix::unistd::{pipe2, Pid};
use proclab::{cleanup, fdio, Deadline, OrDie};
use serde_json::{json, Value};
use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Barrier;
use std::thread::ThreadId;
use std::time::Duration;

// ---- The lab's side of a worker. ----

/// A worker: this same program re-executed with `--role`, its stdout a pipe to the lab.
pub struct Worker {
    pub pid: Pid,
    pub lines: BufReader<std::fs::File>,
    pub stdin: std::fs::File,
}

impl Worker {
    /// The next JSON line the worker printed, or None at end of file (it died).
    pub fn next(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.lines.read_line(&mut line) {
            Ok(n) if n > 0 => serde_json::from_str(&line).ok(),
            _ => None,
        }
    }
    /// Tell the worker to go on (one line on its stdin).
    pub fn go(&mut self) {
        let _ = self.stdin.write_all(b"go\n");
    }
}

/// This program's path and the argv of a worker with `role`, built before any fork.
pub fn worker_argv(role: Role, args: &Args) -> (CString, Vec<CString>) {
    let exe = CString::new(
        std::env::current_exe()
            .or_die("current_exe")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .expect("no NUL");
    let argv = [
        "deadlock-worker".to_string(),
        "--role".into(),
        role.to_possible_value().expect("role").get_name().into(),
        "--philosophers".into(),
        args.philosophers.to_string(),
        "--iters".into(),
        args.iters.to_string(),
    ]
    .into_iter()
    .map(|a| CString::new(a).expect("no NUL"))
    .collect();
    (exe, argv)
}

// ---- The worker's side: its reports, one JSON line each. ----

pub fn emit(v: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

pub fn tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// The cycle the wait-for graph found, by thread and lock name, and how long after the
/// last thread asked it was seen.
pub fn emit_cycle(
    graph: &WaitFor,
    edges: &[Edge],
    locks: &[String],
    detected_us: u64,
) {
    let edges: Vec<Value> = {
        let nodes = graph.nodes.lock().unwrap_or_else(|e| e.into_inner());
        edges
            .iter()
            .map(|&(t, held, wanted, by)| {
                json!({"thread": nodes[t].name, "holds": locks[held], "waits_for": locks[wanted], "held_by": nodes[by].name})
            })
            .collect()
    };
    emit(json!({"ev": "cycle", "edges": edges, "detected_after_us": detected_us}));
}

/// Where a thread waits, as (symbol name, file, line) of each frame of its backtrace.
pub type Frames = Vec<(Option<String>, Option<PathBuf>, Option<u32>)>;

/// parking_lot's cycles: each thread by name, with the frames of the lab's own code in its
/// backtrace (where it waits).
pub fn emit_parking_lot(
    graph: &WaitFor,
    cycles: usize,
    stuck: Vec<(ThreadId, Frames)>,
    after: Duration,
) {
    let nodes = graph.nodes.lock().unwrap_or_else(|e| e.into_inner());
    let name_of = |id| {
        nodes
            .iter()
            .find(|t| t.id == id)
            .map(|t| t.name.clone())
            .unwrap_or_default()
    };
    let pl_threads: Vec<Value> = stuck
        .into_iter()
        .map(|(id, at)| {
            let frames: Vec<String> = at
                .into_iter()
                .filter_map(|(name, path, line)| {
                    let name = name.unwrap_or_default();
                    let file = path
                        .as_deref()
                        .and_then(|p| p.file_name())
                        .map(|f| f.to_string_lossy().into_owned());
                    name.starts_with("deadlock::").then(|| {
                        format!(
                            "{name} ({}:{})",
                            file.unwrap_or_default(),
                            line.unwrap_or(0)
                        )
                    })
                })
                .collect();
            json!({"thread": name_of(id), "frames": frames})
        })
        .collect();
    emit(json!({"ev": "parking_lot", "cycles": cycles, "threads": pl_threads,
                "after_us": after.as_micros() as u64}));
}

/// What the two threads of a fix share: two counters each behind its own lock, the same two
/// behind one lock (`both`), a barrier, and what the threads count.
pub struct Pair {
    pub a: parking_lot::Mutex<u64>,
    pub b: parking_lot::Mutex<u64>,
    pub both: parking_lot::Mutex<(u64, u64)>,
    pub start: Barrier,
    pub retries: AtomicU64,
    pub gave_up: AtomicU64,
    pub successes: AtomicU64,
}

impl Pair {
    pub fn new() -> Pair {
        Pair {
            a: parking_lot::Mutex::new(0),
            b: parking_lot::Mutex::new(0),
            both: parking_lot::Mutex::new((0, 0)),
            start: Barrier::new(2),
            retries: AtomicU64::new(0),
            gave_up: AtomicU64::new(0),
            successes: AtomicU64::new(0),
        }
    }
}

/// A fix's final report: the counters, the time, and what went wrong on the way.
pub fn emit_pair_done(
    role: Role,
    p: &Pair,
    elapsed: Duration,
    rounds_lockstep: u64,
) {
    let us = elapsed.as_micros() as u64;
    let (va, vb) = if role == Role::FixOneLock {
        let g = p.both.lock();
        (g.0, g.1)
    } else {
        (*p.a.lock(), *p.b.lock())
    };
    let retries = p.retries.load(Relaxed);
    let summary = match role {
        Role::FixLockstep => format!(
            "{} successes in {rounds_lockstep} rounds x 2 threads: {retries} failed try_locks, no progress (livelock)",
            p.successes.load(Relaxed)
        ),
        Role::FixTimed => format!(
            "A = {va}, B = {vb}; t1 gave up {} time(s) after waiting 10 ms for B, each time handing A to t2",
            p.gave_up.load(Relaxed)
        ),
        Role::FixJitter => {
            format!("A = {va}, B = {vb}; {retries} failed try_locks, each followed by release and back-off")
        }
        _ => format!("A = {va}, B = {vb}"),
    };
    emit(
        json!({"ev": "done", "role": format!("{role:?}"), "a": va, "b": vb, "elapsed_us": us,
                "retries": retries, "gave_up": p.gave_up.load(Relaxed), "rounds": rounds_lockstep,
                "successes": p.successes.load(Relaxed), "summary": summary}),
    );
}

/// The philosophers' fix's final report.
pub fn emit_meals(meals: u64, n: usize, elapsed: Duration) {
    emit(
        json!({"ev": "done", "meals": meals, "elapsed_us": elapsed.as_micros() as u64,
                "summary": format!("{meals} meals by {n} philosophers")}),
    );
}

/// A tiny xorshift generator for back-off jitter (no dependency needed).
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Rng((t ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

// ---- The processes scenario: the lock files, and one byte each way with each child. ----

/// Two lock files in /dev/shm (tmpfs), named after the lab's pid and registered for cleanup:
/// their shm names, (inode, short name) of each (/proc/locks names files by inode), and the
/// paths the children open.
pub fn lock_files(
    me: Pid,
) -> ([String; 2], [(u64, &'static str); 2], Vec<CString>) {
    let names = [
        format!("/proclab-deadlock-{me}-lock-a"),
        format!("/proclab-deadlock-{me}-lock-b"),
    ];
    let mut files = [(0u64, "lock-a"), (0u64, "lock-b")];
    let mut paths = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let fd = shm_open(
            n.as_str(),
            OFlag::O_CREAT | OFlag::O_RDWR,
            Mode::from_bits_truncate(0o600),
        )
        .or_die("shm_open");
        cleanup::track_shm(n); // unlinked on every way out, SIGINT and SIGTERM included
        files[i].0 = fstat(&fd).or_die("fstat").st_ino; // /proc/locks names files by inode
        paths.push(CString::new(format!("/dev/shm{n}")).expect("no NUL"));
    }
    (names, files, paths)
}

/// Remove the lock files (normal end; the cleanup guard does it on every other way out).
pub fn remove_lock_files(names: &[String; 2]) {
    for n in names {
        shm_unlink(n.as_str()).or_die("shm_unlink");
        cleanup::forget_shm(n);
    }
}

/// One pipe each way between the lab and one child: "ready" up, "go" down.
pub struct Gate {
    pub ready_r: OwnedFd,
    pub ready_w: OwnedFd,
    pub go_r: OwnedFd,
    pub go_w: OwnedFd,
}

pub fn gate() -> Gate {
    let (ready_r, ready_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2");
    let (go_r, go_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2");
    Gate { ready_r, ready_w, go_r, go_w }
}

/// Async-signal-safe: write one byte.
pub fn signal_byte(fd: RawFd) {
    // SAFETY: writes one byte from a live buffer.
    unsafe { libc::write(fd, b"!".as_ptr().cast(), 1) };
}

/// Async-signal-safe: block until one byte arrives (or the other end is gone).
pub fn wait_byte(fd: RawFd) {
    let mut b = 0u8;
    // SAFETY: reads into a live one-byte buffer.
    while unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) } < 0
        && Errno::last() == Errno::EINTR
    {}
}

/// In the lab: wait for one byte from a child, until `deadline` (lab time).
pub fn wait_byte_by(fd: &OwnedFd, deadline: Deadline) -> bool {
    let mut b = [0u8; 1];
    fdio::read_full_by(fd, &mut b, deadline) == Ok(1) // a child may have died
}

/// Async-signal-safe: write all of `msg` to `fd` (blocks while the pipe is full).
pub fn send_all(fd: RawFd, msg: &[u8]) -> bool {
    let mut off = 0;
    while off < msg.len() {
        // SAFETY: writes from a live slice.
        let n =
            unsafe { libc::write(fd, msg[off..].as_ptr().cast(), msg.len() - off) };
        if n <= 0 {
            return false;
        }
        off += n as usize;
    }
    true
}

/// Async-signal-safe: fill `buf` from `fd`.
pub fn recv_all(fd: RawFd, buf: &mut [u8]) -> bool {
    let mut off = 0;
    while off < buf.len() {
        // SAFETY: reads into a live slice.
        let n = unsafe {
            libc::read(fd, buf[off..].as_mut_ptr().cast(), buf.len() - off)
        };
        if n <= 0 {
            return false;
        }
        off += n as usize;
    }
    true
}
