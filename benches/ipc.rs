//! `ipc` group: moving bytes between two processes.
//!
//! - `pipe_rtt_{same_cpu,cross_cpu,unpinned}`: one 1-byte round trip over two pipes (parent
//!   writes, child echoes), like refbench.c's figures of the same names.
//! - `pipe_bw_{...}`: one 64 KiB `write` by a child, `read` by the parent (refbench.c moves
//!   256 MiB in 64 KiB writes; here criterion decides how many 64 KiB writes a sample moves).
//! - `shm_bw_{...}`: one 64 KiB chunk through a ring of 8 slots in a MAP_SHARED mapping: the
//!   child copies it into a free slot and publishes it, the parent checks it in place.
//! - `memcpy_64MiB`: one 64 MiB memcpy, the physical limit.
//!
//! Placement: `same_cpu` = both processes on CPU 0, `cross_cpu` = parent on CPU 0 and child
//! on CPU 1, `unpinned` = wherever the scheduler puts them. Each sample forks its own child
//! (so criterion's `iter_custom`); the time starts after fork and ends when the parent has
//! the last byte.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, pipe, read, write, ForkResult, Pid};
use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const CHUNK: usize = 64 << 10;
const SLOTS: usize = 8;

fn pin(cpu: usize) {
    let mut set = CpuSet::new();
    set.set(cpu).expect("cpu index");
    sched_setaffinity(Pid::from_raw(0), &set).expect("sched_setaffinity");
}

/// The CPUs this process may use, saved before any pinning.
static ALLOWED: OnceLock<CpuSet> = OnceLock::new();

fn unpin() {
    let allowed = ALLOWED.get().expect("ALLOWED saved at start");
    sched_setaffinity(Pid::from_raw(0), allowed).expect("sched_setaffinity");
}

fn cpus() -> usize {
    ALLOWED.get().map_or(1, |s| {
        (0..CpuSet::count()).filter(|&c| s.is_set(c).unwrap_or(false)).count()
    })
}

/// (name suffix, child CPU): the parent goes on CPU 0 when the child is pinned.
fn placements() -> Vec<(&'static str, Option<usize>)> {
    let mut v = vec![("same_cpu", Some(0))];
    if cpus() >= 2 {
        v.push(("cross_cpu", Some(1)));
    }
    v.push(("unpinned", None));
    v
}

fn write_all(fd: impl AsFd, mut buf: &[u8]) -> bool {
    let fd = fd.as_fd();
    while !buf.is_empty() {
        match write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Fork a child pinned to `child_cpu` (if any) that runs `body` and _exits; the parent is
/// pinned to CPU 0 when the child is pinned.
fn spawn(child_cpu: Option<usize>, body: impl FnOnce() -> i32) -> Pid {
    // SAFETY: the child only pins itself, runs `body` (raw syscalls on buffers allocated
    // before fork, no allocation) and _exits.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            if let Some(c) = child_cpu {
                pin(c);
            }
            let code = body();
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            if child_cpu.is_some() {
                pin(0);
            }
            child
        }
    }
}

fn finish(child: Pid) {
    waitpid(child, None).expect("waitpid");
    unpin();
}

fn pipe_rtt(iters: u64, child_cpu: Option<usize>) -> Duration {
    let (a_rx, a_tx) = pipe().expect("pipe");
    let (b_rx, b_tx) = pipe().expect("pipe");
    let child = spawn(child_cpu, || {
        let mut c = [0u8; 1];
        for _ in 0..iters {
            if read(&a_rx, &mut c) != Ok(1) || write(&b_tx, &c) != Ok(1) {
                return 1;
            }
        }
        0
    });
    let mut c = [b'x'; 1];
    let t0 = Instant::now();
    for _ in 0..iters {
        assert_eq!(write(&a_tx, &c), Ok(1));
        assert_eq!(read(&b_rx, &mut c), Ok(1));
    }
    let took = t0.elapsed();
    finish(child);
    took
}

fn pipe_bw(
    iters: u64,
    child_cpu: Option<usize>,
    src: &[u8],
    dst: &mut [u8],
) -> Duration {
    let (rx, tx) = pipe().expect("pipe");
    let child = spawn(child_cpu, || {
        for _ in 0..iters {
            if !write_all(&tx, src) {
                return 1;
            }
        }
        0
    });
    drop(tx);
    let want = iters as usize * CHUNK;
    let t0 = Instant::now();
    let mut got = 0;
    // Stop the clock at the last byte, not at EOF: EOF comes only after the child's exit has
    // torn down its copy of this (large) benchmark process, which is not pipe work.
    while got < want {
        match read(&rx, dst) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    let took = t0.elapsed();
    assert_eq!(got, want);
    finish(child);
    took
}

/// The ring: a header page (head, tail) and SLOTS chunks, in one MAP_SHARED mapping.
struct Ring {
    base: *mut u8,
}

impl Ring {
    fn new() -> Ring {
        let len = NonZeroUsize::new(4096 + SLOTS * CHUNK).expect("non-zero");
        // SAFETY: a fresh shared anonymous mapping; kept for the whole bench run.
        let p = unsafe {
            mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }
        .expect("mmap");
        Ring { base: p.cast::<u8>().as_ptr() }
    }
    fn head(&self) -> &AtomicU64 {
        // SAFETY: offset 0 of the mapping, aligned, zero-initialised.
        unsafe { &*(self.base as *const AtomicU64) }
    }
    fn tail(&self) -> &AtomicU64 {
        // SAFETY: offset 64 of the mapping, aligned, zero-initialised.
        unsafe { &*(self.base.add(64) as *const AtomicU64) }
    }
    fn slot(&self, i: u64) -> *mut u8 {
        // SAFETY: inside the mapping.
        unsafe { self.base.add(4096 + (i as usize % SLOTS) * CHUNK) }
    }
}

fn wait_until(mut ready: impl FnMut() -> bool) {
    let mut spins = 0u32;
    while !ready() {
        spins += 1;
        if spins < 200 {
            std::hint::spin_loop();
        } else {
            // SAFETY: no preconditions.
            unsafe { libc::sched_yield() };
        }
    }
}

fn shm_bw(
    iters: u64,
    child_cpu: Option<usize>,
    ring: &Ring,
    src: &mut [u8],
) -> Duration {
    ring.head().store(0, Ordering::SeqCst);
    ring.tail().store(0, Ordering::SeqCst);
    let child = spawn(child_cpu, || {
        for i in 0..iters {
            wait_until(|| i - ring.tail().load(Ordering::Acquire) < SLOTS as u64);
            src[..8].copy_from_slice(&i.to_le_bytes());
            // SAFETY: the slot is free (tail passed it) and CHUNK bytes long.
            unsafe {
                std::ptr::copy_nonoverlapping(src.as_ptr(), ring.slot(i), CHUNK)
            };
            ring.head().store(i + 1, Ordering::Release);
        }
        0
    });
    let t0 = Instant::now();
    let mut bad = 0;
    for i in 0..iters {
        wait_until(|| ring.head().load(Ordering::Acquire) > i);
        // SAFETY: the slot is published and not rewritten until tail passes it.
        let slot = unsafe { std::slice::from_raw_parts(ring.slot(i), CHUNK) };
        bad += (slot[..8] != i.to_le_bytes() || slot[8..] != src[8..]) as u64;
        ring.tail().store(i + 1, Ordering::Release);
    }
    let took = t0.elapsed();
    assert_eq!(bad, 0, "corrupted chunks");
    finish(child);
    took
}

fn ipc(c: &mut Criterion) {
    ALLOWED.get_or_init(|| {
        sched_getaffinity(Pid::from_raw(0)).expect("sched_getaffinity")
    });
    let mut g = c.benchmark_group("ipc");
    g.warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);

    for (place, cpu) in placements() {
        g.bench_function(format!("pipe_rtt_{place}"), |b| {
            b.iter_custom(|n| pipe_rtt(n, cpu))
        });
    }

    let src = vec![7u8; CHUNK];
    let mut dst = vec![0u8; CHUNK];
    g.throughput(Throughput::Bytes(CHUNK as u64));
    for (place, cpu) in placements() {
        g.bench_function(format!("pipe_bw_{place}"), |b| {
            b.iter_custom(|n| pipe_bw(n, cpu, &src, &mut dst))
        });
    }

    let ring = Ring::new();
    let mut src = vec![7u8; CHUNK];
    for (place, cpu) in placements() {
        g.bench_function(format!("shm_bw_{place}"), |b| {
            b.iter_custom(|n| shm_bw(n, cpu, &ring, &mut src))
        });
    }

    let size = 64 << 20;
    let from = vec![1u8; size];
    let mut to = vec![2u8; size];
    g.throughput(Throughput::Bytes(size as u64));
    g.bench_function("memcpy_64MiB", |b| {
        b.iter(|| {
            to.copy_from_slice(std::hint::black_box(&from));
            std::hint::black_box(&mut to);
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    // The book quotes the table `lab benchmarks` writes; plots would double the run time here.
    config = Criterion::default().without_plots();
    targets = ipc
}
criterion_main!(benches);
