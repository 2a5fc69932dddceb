//! Section 7: how fast a pipe moves bytes, in writes of 4 KiB, 64 KiB and 1 MiB, with
//! both processes on one CPU, against a memcpy of the same data: every byte is copied
//! twice (into the pipe and out), and each write and read is a system call.

use crate::args::Args;
use crate::watch::net;
use nix::errno::Errno;
use nix::sys::wait::waitpid;
use nix::unistd::{getpid, pipe, read, ForkResult};
use proclab::_exit;
use proclab::bytes::pattern;
use proclab::fdio::write_all;
use proclab::measure::{fmt_bytes, fmt_rate};
use proclab::Stopwatch;
use proclab::{check, cleanup, cpu, flush_stdout, lifeline, observe, Lab, OrDie};
use std::time::Duration;

pub fn run(lab: &mut Lab, args: &Args) {
    let total = (args.mib as usize) << 20;
    let allowed = cpu::allowed(); // restored after: a taskset is kept
    let on = allowed[0];
    let (mut rows, mut all_bytes, mut held) = (Vec::new(), true, true);
    // Both on one CPU (section 5 shows why placement matters); the fastest of 3 runs,
    // for the pipe and for memcpy alike: other programs can only add time.
    let _ = cpu::pin(on); // the child inherits the affinity across fork
    for chunk in [4usize << 10, 64 << 10, 1 << 20] {
        let mut runs: Vec<(usize, Duration)> =
            (0..3).map(|_| through_pipe(chunk, total)).collect();
        runs.sort_by_key(|&(moved, took)| (std::cmp::Reverse(moved), took));
        all_bytes &= runs.iter().all(|r| r.0 == total);
        let (moved, took) = runs[0];
        let copy = (0..3).map(|_| memcpy(chunk, total)).min().unwrap_or_default();
        held &= took > copy;
        let share = copy.as_secs_f64() / took.as_secs_f64().max(1e-12);
        rows.push(vec![
            fmt_bytes(chunk as u64),
            fmt_bytes(moved as u64),
            fmt_rate(moved as u64, took),
            fmt_rate(total as u64, copy),
            format!("{:.0}%", share * 100.0),
        ]);
    }
    let _ = cpu::allow(&allowed);
    let placed = format!("write size (both on CPU {on})");
    let headers = [placed.as_str(), "moved", "pipe", "memcpy", "pipe/memcpy"];
    lab.table("throughput", &headers, &rows);
    let word = if held { "held" } else { "did not hold" };
    observe!(
        lab,
        "below_memcpy",
        "the pipe slower than memcpy for every write size (fastest of 3 each): {word} \
         on this run",
        held
    );
    check!(
        lab,
        "throughput_bytes_complete",
        all_bytes,
        "every byte written came out of the pipe, for every write size"
    );
}

/// `total` bytes through a pipe in writes of `chunk`, a child writing, the parent
/// reading: the bytes received and the time from the start to end of file.
fn through_pipe(chunk: usize, total: usize) -> (usize, Duration) {
    let parent = getpid().as_raw();
    let (src, mut dst) = (pattern(chunk, 5), vec![0u8; chunk]);
    let (rx, tx) = pipe().or_die("pipe");
    let (gate_rx, gate_tx) = pipe().or_die("pipe");
    flush_stdout();
    // SAFETY: the child only reads, writes (a buffer allocated before fork) and _exits.
    let child = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            lifeline::die_with_parent(parent);
            drop((rx, gate_tx));
            let _ = read(&gate_rx, &mut [0u8; 1]); // wait for the start
            for _ in 0..total / chunk {
                if write_all(&tx, &src).is_err() {
                    _exit(1)
                }
            }
            _exit(0)
        }
        ForkResult::Parent { child } => child,
    };
    drop((tx, gate_rx));
    let dog = net(&[child], total >> 20);
    let (sw, mut moved) = (Stopwatch::start(), 0);
    drop(gate_tx); // start
    loop {
        match read(&rx, &mut dst) {
            Ok(0) => break, // EOF: the writer is done (or dead)
            Ok(n) => moved += n,
            Err(Errno::EINTR) => {}
            Err(e) => proclab::die("read", e),
        }
    }
    let took = sw.elapsed();
    let _ = waitpid(child, None);
    dog.disarm();
    cleanup::forget(child);
    (moved, took)
}

/// The time memcpy takes to copy `total` bytes in pieces of `chunk`, between buffers
/// of the pipe's sizes: the limit for this data, hot in cache.
fn memcpy(chunk: usize, total: usize) -> Duration {
    let (src, mut dst) = (pattern(chunk, 5), vec![0u8; chunk]);
    let sw = Stopwatch::start();
    for _ in 0..total / chunk {
        dst.copy_from_slice(std::hint::black_box(&src)); // memcpy
        std::hint::black_box(&mut dst);
    }
    sw.elapsed()
}
