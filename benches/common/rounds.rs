//! The Rust side of every figure compared with the C reference (`benches/c/refbench.c`
//! does the same, function for function): one round of a figure runs some untimed
//! iterations, then times each of the others alone.
//!
//! A figure's name says its work, `KIND[_SIZE][_PLACEMENT]`, parsed the same way on both
//! sides: `pipe_bw_64MiB_cross_cpu` moves bytes through a pipe from a child on CPU 1 to
//! the parent on CPU 0, through 64 MiB working sets (out of cache; `64KiB` stays in
//! cache). A bandwidth iteration moves [`BLOCK`] bytes in [`CHUNK`] steps.

use super::*;
use proclab::clock::now_ns;
use std::hint::black_box;
use std::ptr;
use std::sync::atomic::Ordering::{Acquire, Release};

pub const CHUNK: usize = 64 << 10;
pub const BLOCK: usize = 1 << 20;
const SLOTS: u64 = 8;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    ThreadSpawnJoin,
    PthreadCreateJoin,
    ForkExitWait,
    VforkTrueWait,
    ForkExecTrueWait,
    PosixSpawnTrueWait,
    PipeRtt,
    SocketpairRtt,
    FutexRtt,
    Memcpy,
    PipeBw,
    SocketpairBw,
    ShmBw,
    VmspliceReadBw,
    VmspliceSpliceBw,
}

/// Every kind with its name; `sized` kinds take a `_64KiB`/`_64MiB` working set.
const KINDS: [(&str, Kind, bool); 15] = [
    ("thread_spawn_join", Kind::ThreadSpawnJoin, false),
    ("pthread_create_join", Kind::PthreadCreateJoin, false),
    ("fork_exit_wait", Kind::ForkExitWait, false),
    ("vfork_true_wait", Kind::VforkTrueWait, false),
    ("fork_exec_true_wait", Kind::ForkExecTrueWait, false),
    ("posix_spawn_true_wait", Kind::PosixSpawnTrueWait, false),
    ("pipe_rtt", Kind::PipeRtt, false),
    ("socketpair_rtt", Kind::SocketpairRtt, false),
    ("futex_rtt", Kind::FutexRtt, false),
    ("memcpy", Kind::Memcpy, true),
    ("pipe_bw", Kind::PipeBw, true),
    ("socketpair_bw", Kind::SocketpairBw, true),
    ("shm_bw", Kind::ShmBw, true),
    ("vmsplice_read_bw", Kind::VmspliceReadBw, true),
    ("vmsplice_splice_bw", Kind::VmspliceSpliceBw, true),
];

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figure {
    pub kind: Kind,
    /// The working set of a copy in bytes (0 for kinds that copy nothing).
    pub wset: usize,
    pub place: Placement,
}

impl Figure {
    /// `KIND[_SIZE][_PLACEMENT]`, as refbench.c's `parse`; None for an unknown name.
    pub fn parse(name: &str) -> Option<Figure> {
        let (rest, place) = [
            ("_same_cpu", Placement::SameCpu),
            ("_cross_cpu", Placement::CrossCpu),
            ("_unpinned", Placement::Unpinned),
        ]
        .iter()
        .find_map(|(s, p)| Some((name.strip_suffix(s)?, *p)))
        .unwrap_or((name, Placement::Unpinned));
        let (kind, wset) = [("_64KiB", 64 << 10), ("_64MiB", 64 << 20)]
            .iter()
            .find_map(|(s, w)| Some((rest.strip_suffix(s)?, *w)))
            .unwrap_or((rest, 0));
        let &(_, kind, sized) = KINDS.iter().find(|k| k.0 == kind)?;
        (sized == (wset != 0)).then_some(Figure { kind, wset, place })
    }

    pub fn is_bandwidth(&self) -> bool {
        self.wset != 0
    }
}

/// Run `once` `warm` times untimed, then once per slot of `out`, each time alone (ns).
fn timed(warm: usize, out: &mut [u64], mut once: impl FnMut()) {
    for i in 0..warm + out.len() {
        let t0 = now_ns();
        once();
        let t = now_ns() - t0;
        if i >= warm {
            out[i - warm] = t;
        }
    }
}

/// One round of `fig`: `warm` untimed iterations, then `out.len()` timed ones.
pub fn round(fig: &Figure, warm: usize, out: &mut [u64]) {
    fig.place.begin();
    match fig.kind {
        Kind::PipeRtt => {
            let ((there_r, there_w), (back_r, back_w)) = (raw_pipe(), raw_pipe());
            echo_round(fig.place, warm, out, [back_r, there_w, there_r, back_w]);
        }
        Kind::SocketpairRtt => {
            let (p, c) = raw_socketpair();
            echo_round(fig.place, warm, out, [p, p, c, c]);
        }
        Kind::FutexRtt => futex_round(fig.place, warm, out),
        Kind::Memcpy => memcpy_round(fig.wset, warm, out),
        Kind::PipeBw
        | Kind::SocketpairBw
        | Kind::ShmBw
        | Kind::VmspliceReadBw
        | Kind::VmspliceSpliceBw => stream_round(fig, warm, out),
        _ => spawn_round(fig.kind, warm, out),
    }
    fig.place.end();
}

fn spawn_round(kind: Kind, warm: usize, out: &mut [u64]) {
    let prog = TrueProgram::new();
    match kind {
        Kind::ThreadSpawnJoin => timed(warm, out, thread_spawn_join),
        Kind::PthreadCreateJoin => timed(warm, out, pthread_create_join),
        Kind::ForkExitWait => timed(warm, out, fork_exit_wait),
        Kind::VforkTrueWait => {
            let len = 64 << 10;
            let mut stack: Vec<u8> = Vec::with_capacity(len); // malloc, untouched
            let top = (stack.as_mut_ptr() as usize + len) & !15;
            timed(warm, out, || vfork_true_wait(&prog, top as *mut libc::c_void));
        }
        Kind::ForkExecTrueWait => timed(warm, out, || fork_exec_true_wait(&prog)),
        Kind::PosixSpawnTrueWait => {
            timed(warm, out, || posix_spawn_true_wait(&prog))
        }
        _ => unreachable!("not a spawn kind"),
    }
}

fn close_pair(rd: i32, wr: i32) {
    close_fd(rd);
    if wr != rd {
        close_fd(wr);
    }
}

/// One byte there and back. `fds` = [parent reads, parent writes, child reads, child
/// writes] (a socket is one fd for both ways). The child echoes until end of file.
fn echo_round(place: Placement, warm: usize, out: &mut [u64], fds: [i32; 4]) {
    let [prd, pwr, crd, cwr] = fds;
    let pid = fork_or_panic();
    if pid == 0 {
        place.child();
        close_pair(prd, pwr);
        let mut c = [0u8; 1];
        loop {
            if read_fd(crd, &mut c) != 1 {
                child_exit(true); // end of file: the parent is done
            }
            if write_fd(cwr, &c) != 1 {
                child_exit(false);
            }
        }
    }
    close_pair(crd, cwr);
    let mut c = [b'x'; 1];
    timed(warm, out, || {
        assert_eq!(write_fd(pwr, &c), 1, "write");
        assert_eq!(read_fd(prd, &mut c), 1, "read");
    });
    close_pair(prd, pwr); // the child reads end of file and exits
    wait_ok(pid);
}

/// The flag word: 1 = ping (parent to child), 2 = pong, 3 = stop.
fn futex_round(place: Placement, warm: usize, out: &mut [u64]) {
    let map = SharedMap::new(4096);
    let flag = map.word(0);
    let pid = fork_or_panic();
    if pid == 0 {
        place.child();
        loop {
            let mut v = flag.load(Acquire);
            while v != 1 && v != 3 {
                futex_wait(flag, v); // sleep until the parent changes the word
                v = flag.load(Acquire);
            }
            if v == 3 {
                child_exit(true);
            }
            flag.store(2, Release);
            futex_wake(flag);
        }
    }
    timed(warm, out, || {
        flag.store(1, Release);
        futex_wake(flag);
        while flag.load(Acquire) != 2 {
            futex_wait(flag, 1);
        }
    });
    flag.store(3, Release);
    futex_wake(flag);
    wait_ok(pid);
}

fn memcpy_round(wset: usize, warm: usize, out: &mut [u64]) {
    let (src, mut dst) = (filled(wset, 1), filled(wset, 2));
    let mut off = 0;
    timed(warm, out, || {
        for _ in 0..BLOCK / CHUNK {
            dst[off..off + CHUNK].copy_from_slice(&src[off..off + CHUNK]);
            black_box(&mut dst); // every copy happens
            off = (off + CHUNK) % wset;
        }
    });
    assert_eq!(dst[0], 1, "memcpy check");
}

/// The producer's side of a pipe (or a socket): CHUNK bytes at a time from `src`, by write(2) or by
/// vmsplice(2) (`lend`: the pages are lent to the pipe instead of copied).
fn pipe_send(fd: i32, src: &[u8], chunks: u64, lend: bool) -> bool {
    let mut off = 0;
    for _ in 0..chunks {
        let mut v = libc::iovec {
            iov_base: src[off..].as_ptr() as *mut libc::c_void,
            iov_len: CHUNK,
        };
        while v.iov_len > 0 {
            let n = if lend {
                // SAFETY: one iovec inside `src`, which outlives the pipe's use of it
                // (the source is never written again in this process).
                unsafe { libc::vmsplice(fd, &v, 1, 0) }
            } else {
                // SAFETY: the iovec's bytes lie inside `src`.
                unsafe { libc::write(fd, v.iov_base, v.iov_len) }
            };
            if n <= 0 {
                return false;
            }
            // SAFETY: n <= iov_len: the new base stays inside `src`.
            v.iov_base = unsafe { v.iov_base.add(n as usize) };
            v.iov_len -= n as usize;
        }
        off = (off + CHUNK) % src.len();
    }
    true
}

/// The consumer's side: one BLOCK, read(2) into `dst` (at `off` in the working set), or,
/// with a `devnull` fd, splice(2)d to /dev/null without touching the bytes.
fn pipe_recv(fd: i32, dst: &mut [u8], off: &mut usize, devnull: Option<i32>) {
    let mut left = BLOCK;
    while left > 0 {
        let mut n = left.min(CHUNK);
        let got = match devnull {
            // SAFETY: plain splice between two fds; no user memory is involved.
            Some(null) => unsafe {
                libc::splice(fd, ptr::null_mut(), null, ptr::null_mut(), n, 0)
            },
            None => {
                n = n.min(dst.len() - *off);
                let got = read_fd(fd, &mut dst[*off..*off + n]);
                if got > 0 {
                    *off = (*off + got as usize) % dst.len();
                }
                got
            }
        };
        assert!(got > 0, "read/splice: {}", std::io::Error::last_os_error());
        left -= got as usize;
    }
}

/// One step of a wait on the shared-memory ring: spin, and after 200 spins yield the
/// CPU (on one CPU the other side must run), as refbench.c's `relax`.
fn relax(spins: &mut u32) {
    *spins += 1;
    if *spins < 200 {
        std::hint::spin_loop();
    } else {
        // SAFETY: no preconditions.
        unsafe { libc::sched_yield() };
    }
}

/// The ring: a header page (`head` = chunks published at 0, `tail` = chunks consumed at
/// 64) and SLOTS chunks, in one MAP_SHARED mapping.
fn slot(map: &SharedMap, i: u64) -> *mut u8 {
    // SAFETY: inside the mapping (4096 + SLOTS * CHUNK bytes).
    unsafe { map.ptr.add(4096 + (i % SLOTS) as usize * CHUNK) }
}

fn shm_send(map: &SharedMap, src: &[u8], chunks: u64) {
    let (head, tail) = (map.word64(0), map.word64(64));
    let mut off = 0;
    for i in 0..chunks {
        let mut spins = 0;
        while i - tail.load(Acquire) >= SLOTS {
            relax(&mut spins);
        }
        // SAFETY: the slot is free (tail passed it) and CHUNK bytes long.
        unsafe {
            ptr::copy_nonoverlapping(src[off..].as_ptr(), slot(map, i), CHUNK)
        };
        head.store(i + 1, Release);
        off = (off + CHUNK) % src.len();
    }
}

fn shm_recv(map: &SharedMap, next: &mut u64, dst: &mut [u8], off: &mut usize) {
    let (head, tail) = (map.word64(0), map.word64(64));
    for _ in 0..BLOCK / CHUNK {
        let i = *next;
        let mut spins = 0;
        while head.load(Acquire) <= i {
            relax(&mut spins);
        }
        // SAFETY: the slot is published and not rewritten until tail passes it.
        unsafe {
            ptr::copy_nonoverlapping(slot(map, i), dst[*off..].as_mut_ptr(), CHUNK)
        };
        tail.store(i + 1, Release);
        *next += 1;
        *off = (*off + CHUNK) % dst.len();
    }
}

/// A child produces `warm + out.len()` BLOCKs from its working set; the parent consumes
/// them into its own and times each BLOCK from the end of the previous one.
fn stream_round(fig: &Figure, warm: usize, out: &mut [u64]) {
    let shm = fig.kind == Kind::ShmBw;
    let lend = matches!(fig.kind, Kind::VmspliceReadBw | Kind::VmspliceSpliceBw);
    let chunks = ((warm + out.len()) * (BLOCK / CHUNK)) as u64;
    let map = shm.then(|| SharedMap::new(4096 + SLOTS as usize * CHUNK));
    let (rd, wr) = match fig.kind {
        Kind::ShmBw => (-1, -1),
        Kind::SocketpairBw => raw_socketpair(),
        _ => raw_pipe(),
    };
    let src = filled(fig.wset, 7); // before fork: the child only reads it
    let pid = fork_or_panic();
    if pid == 0 {
        fig.place.child();
        let ok = match &map {
            Some(map) => {
                shm_send(map, &src, chunks);
                true
            }
            None => {
                close_fd(rd);
                pipe_send(wr, &src, chunks, lend)
            }
        };
        child_exit(ok);
    }
    if !shm {
        close_fd(wr);
    }
    let devnull = (fig.kind == Kind::VmspliceSpliceBw).then(|| {
        // SAFETY: a constant, NUL-terminated path.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY) };
        assert!(fd >= 0, "open /dev/null");
        fd
    });
    let mut dst = filled(fig.wset, 2); // after fork: no copy-on-write fault when written
    let (mut off, mut next, mut prev) = (0, 0, now_ns());
    for b in 0..warm + out.len() {
        match &map {
            Some(map) => shm_recv(map, &mut next, &mut dst, &mut off),
            None => pipe_recv(rd, &mut dst, &mut off, devnull),
        }
        let t = now_ns();
        if b >= warm {
            out[b - warm] = t - prev;
        }
        prev = t;
    }
    let last = ((warm + out.len()) * BLOCK).min(fig.wset) - 1;
    assert!(devnull.is_some() || (dst[0] == 7 && dst[last] == 7), "data check");
    wait_ok(pid);
    if let Some(fd) = devnull {
        close_fd(fd);
    }
    if !shm {
        close_fd(rd);
    }
}
