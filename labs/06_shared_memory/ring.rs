//! Section 6: zero-copy. A child moves data to the parent through a ring of slots in a
//! shared mapping (the producer copies each chunk once, straight into a slot; the
//! consumer reads it in place), then through a pipe (the kernel copies each chunk in,
//! then out), with both processes on one CPU.

use crate::args::Args;
use crate::children::{reap, spin_until, Gate, LIMIT};
use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpid, pipe, ForkResult};
use proclab::_exit;
use proclab::bytes::pattern;
use proclab::fdio::{read_full, write_all};
use proclab::measure::{fmt_bytes, fmt_duration, fmt_rate};
use proclab::{
    check, cleanup, cpu, flush_stdout, lifeline, observe, Deadline, Lab,
};
use proclab::{Nanos, OrDie, Watchdog};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const CHUNK: usize = 64 << 10; // bytes per slot and per pipe write
const SLOTS: usize = 8; // slots in the ring

pub fn run(lab: &mut Lab, args: &Args) {
    let total = (args.mib as usize) << 20;
    let allowed = cpu::allowed(); // restored after: a taskset is kept
    let on = allowed[0];
    // Both on one CPU, as the benchmark's `same_cpu`: on a busy machine a cross-CPU
    // hand-off depends on what else runs there. The fastest of 3 runs each: other
    // programs can only add time.
    let _ = cpu::pin(on); // the child inherits the affinity across fork
    let mut rings: Vec<_> = (0..3).map(|_| through_ring(total)).collect();
    let mut pipes: Vec<_> = (0..3).map(|_| through_pipe(total)).collect();
    let _ = cpu::allow(&allowed);
    let all_ok = rings.iter().chain(&pipes).all(|r| r.0 == total / CHUNK);
    rings.sort_by_key(|r| (std::cmp::Reverse(r.0), r.1));
    pipes.sort_by_key(|r| (std::cmp::Reverse(r.0), r.1));
    let ((shm_ok, shm), (pipe_ok, piped)) = (rings[0], pipes[0]);
    let row = |path: String, (ok, took): (usize, Duration)| {
        let (moved, rate) = (fmt_bytes(total as u64), fmt_rate(total as u64, took));
        vec![path, moved, fmt_duration(took), rate, ok.to_string()]
    };
    let rows = [
        row(format!("shared-memory ring (CPU {on})"), rings[0]),
        row(format!("pipe (CPU {on})"), pipes[0]),
    ];
    let headers = ["path", "moved", "time", "rate", "chunks verified"];
    lab.table("zero_copy_table", &headers, &rows);
    let speedup = piped.as_secs_f64() / shm.as_secs_f64().max(1e-12);
    let held = shm < piped;
    let (moved, word) =
        (fmt_bytes(total as u64), if held { "held" } else { "did not hold" });
    observe!(
        lab,
        "zero_copy",
        "the ring moved {moved} {speedup:.1}x as fast as the pipe (fastest of 3 \
         each; no copy through the kernel): ring faster {word} on this run",
        bytes = total,
        chunk = CHUNK,
        shm_ns = Nanos(shm),
        pipe_ns = Nanos(piped),
        shm_chunks_ok = shm_ok,
        pipe_chunks_ok = pipe_ok,
        speedup = (speedup * 100.0).round() / 100.0,
        held
    );
    check!(
        lab,
        "zero_copy_intact",
        all_ok,
        "every chunk arrived intact through the ring and through the pipe"
    );
}

/// The ring's header, at the start of its mapping; the slots follow at offset 4096.
#[repr(C)]
struct RingHead {
    head: AtomicU64, // chunks published by the producer
    _pad: [u8; 56],
    tail: AtomicU64, // chunks consumed by the consumer
}

/// `total` bytes from a child to the parent through a ring of SLOTS chunks in a
/// shared mapping: (chunks verified, time).
fn through_ring(total: usize) -> (usize, Duration) {
    let parent = getpid().as_raw();
    let chunks = total / CHUNK;
    let len = NonZeroUsize::new(4096 + SLOTS * CHUNK).expect("non-zero");
    let rw = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
    // SAFETY: a fresh anonymous mapping, zero-filled: head and tail start at 0.
    let map = unsafe { mmap_anonymous(None, len, rw, MapFlags::MAP_SHARED) };
    let base = map.or_die("mmap").cast::<u8>().as_ptr();
    let ring = base.cast::<RingHead>();
    // SAFETY: slot `i` of the ring lies inside the mapping.
    let slot = |i: u64| unsafe { base.add(4096 + (i as usize % SLOTS) * CHUNK) };
    let mut src = pattern(CHUNK, 6);
    let gate = Gate::new();
    flush_stdout();
    // ANCHOR: ring
    // SAFETY: the child only uses the shared mapping, a buffer allocated before
    // fork, read and _exit.
    let child = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => unsafe {
            lifeline::die_with_parent(parent);
            gate.wait(); // until the consumer starts its clock
            for i in 0..chunks as u64 {
                // Wait for a free slot: the consumer is less than SLOTS behind.
                let tail = || (*ring).tail.load(Ordering::Acquire);
                spin_until(None, || i - tail() < SLOTS as u64);
                stamp(&mut src, i);
                let to = std::slice::from_raw_parts_mut(slot(i), CHUNK);
                to.copy_from_slice(&src); // the only copy: into the shared slot
                (*ring).head.store(i + 1, Ordering::Release); // publish it
            }
            libc::_exit(0)
        },
        ForkResult::Parent { child } => child,
    };
    // ANCHOR_END: ring
    // ANCHOR: ring_consumer
    let sw = gate.open(); // release the producer
    let by = Some(Deadline::after(limit(total))); // for a producer that stops
    let mut ok = 0;
    for i in 0..chunks as u64 {
        // SAFETY: slot i is published (head > i), not rewritten until tail > i.
        unsafe {
            if !spin_until(by, || (*ring).head.load(Ordering::Acquire) > i) {
                break;
            }
            let got = std::slice::from_raw_parts(slot(i), CHUNK);
            ok += verify(got, &src, i) as usize; // read in place: no copy
            (*ring).tail.store(i + 1, Ordering::Release); // the slot is free again
        }
    }
    let took = sw.elapsed();
    // ANCHOR_END: ring_consumer
    let _ = kill(child, Signal::SIGKILL); // in case it still waits for a slot
    reap(child);
    // SAFETY: the child is gone and no pointer into the mapping is used after this.
    unsafe { munmap(map.or_die("mmap"), len.get()) }.or_die("munmap");
    (ok, took)
}

/// The same transfer through a pipe: the kernel copies each chunk in, then out.
fn through_pipe(total: usize) -> (usize, Duration) {
    let parent = getpid().as_raw();
    let chunks = total / CHUNK;
    let (mut src, mut dst) = (pattern(CHUNK, 6), vec![0u8; CHUNK]);
    let (rx, tx) = pipe().or_die("pipe");
    let gate = Gate::new();
    flush_stdout();
    // SAFETY: the child only reads, writes (a buffer allocated before fork), _exits.
    let child = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            lifeline::die_with_parent(parent);
            drop(rx);
            gate.wait();
            for i in 0..chunks as u64 {
                stamp(&mut src, i);
                if write_all(&tx, &src).is_err() {
                    _exit(1)
                }
            }
            _exit(0)
        }
        ForkResult::Parent { child } => child,
    };
    drop(tx);
    // A writer that stops would block the reads: it is killed at the limit.
    let dog = Watchdog::arm(limit(total), move || {
        let _ = kill(child, Signal::SIGKILL);
    });
    let sw = gate.open();
    let mut ok = 0;
    for i in 0..chunks as u64 {
        if read_full(&rx, &mut dst) != Ok(CHUNK) {
            break; // the writer is gone
        }
        ok += verify(&dst, &src, i) as usize;
    }
    let took = sw.elapsed();
    dog.disarm();
    reap(child);
    (ok, took)
}

/// How long a transfer of `total` bytes may take: [`LIMIT`], plus 10 ms a MiB (far
/// more than it takes on a busy machine).
fn limit(total: usize) -> Duration {
    LIMIT + Duration::from_millis(10 * (total >> 20) as u64)
}

/// The source chunk, with chunk number `i` stamped in its first 8 bytes.
fn stamp(buf: &mut [u8], i: u64) {
    buf[..8].copy_from_slice(&i.to_le_bytes());
}

/// True if `got` is `src` stamped with `i`.
fn verify(got: &[u8], src: &[u8], i: u64) -> bool {
    got[..8] == i.to_le_bytes() && got[8..] == src[8..]
}
