//! Section 5: a CPU-bound job (`tvp::job`) done by one loop, split between threads and
//! split between forked processes, from 2^10 elements to 2^max_job. The processes write
//! their parts into a shared page; the parent adds them up.

use crate::claims::{times, Table};
use crate::tvp::{self, job, part};
use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};
use nix::sys::wait::waitpid;
use nix::unistd::{getpid, ForkResult};
use proclab::_exit;
use proclab::lifeline::die_with_parent;
use proclab::measure::{fmt_duration, time_n};
use proclab::{check, cleanup, flush_stdout, observe, say, Lab, Nanos, OrDie};
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::time::Duration;

/// The median time of `n` runs of `f` (its result kept from the optimiser).
fn median_of(n: usize, mut f: impl FnMut() -> u64) -> Duration {
    time_n(n, || {
        black_box(f());
    })
    .median
}

fn speedup(seq: Duration, par: Duration) -> f64 {
    times(seq.as_secs_f64(), par.as_secs_f64())
}

/// The job split between `workers` forked children; each writes its part into its slot
/// of the shared mapping, the parent adds the parts after reaping them all.
fn split_processes(size: u64, workers: u64, slots: &Slots) -> u64 {
    let me = getpid().as_raw();
    let mut kids = Vec::with_capacity(workers as usize);
    // ANCHOR: processes
    for k in 0..workers {
        flush_stdout();
        // SAFETY: the child computes (no allocation, no lock), writes its slot
        // and _exits.
        match unsafe { cleanup::fork_tracked() } {
            ForkResult::Child => {
                die_with_parent(me);
                let (lo, hi) = part(size, workers, k);
                slots.put(k as usize, job(lo, hi)); // into the shared page
                _exit(0)
            }
            ForkResult::Parent { child } => kids.push(child),
        }
    }
    for child in kids {
        waitpid(child, None).or_die("waitpid"); // then its write is visible
        cleanup::forget(child);
    }
    (0..workers as usize).map(|k| slots.get(k)).fold(0, u64::wrapping_add)
    // ANCHOR_END: processes
}

pub fn run(lab: &mut Lab, table: &mut Table, max_job: u32) {
    let workers = proclab::cpu::cpus().max(2) as u64;
    say!("the same job (tvp::job) done by one loop, {workers} threads and {workers} forked processes, from 2^10 to 2^{max_job} elements");
    let slots = Slots::new(workers as usize);
    let (mut sweep, mut rows, mut parts_add_up) = (Vec::new(), Vec::new(), true);
    for exp in (10..=max_job).step_by(2) {
        let size = 1u64 << exp;
        let reps = if exp <= 20 { 9 } else { 3 };
        let seq = median_of(reps, || job(0, black_box(size)));
        let thr = median_of(reps, || tvp::split_threads(size, workers));
        let prc = median_of(reps, || split_processes(size, workers, &slots));
        let whole = job(0, size);
        parts_add_up &= tvp::split_threads(size, workers) == whole
            && split_processes(size, workers, &slots) == whole;
        let (st, sp) = (speedup(seq, thr), speedup(seq, prc));
        let d = fmt_duration;
        let x = |s: f64| format!("{s:.2}x");
        rows.push(vec![format!("2^{exp}"), d(seq), d(thr), d(prc), x(st), x(sp)]);
        sweep.push((exp, seq, thr, prc));
    }
    let (t, p) = (format!("{workers} threads"), format!("{workers} processes"));
    let heads = [
        "job size",
        "sequential",
        &t,
        &p,
        "threads speed-up",
        "processes speed-up",
    ];
    lab.table("compute_sweep", &heads, &rows);
    // The smallest size from which the processes beat the plain loop at every larger size.
    let pays_from = sweep
        .iter()
        .rev()
        .take_while(|&&(_, seq, _, prc)| speedup(seq, prc) > 1.0)
        .last()
        .map(|&(exp, ..)| exp);
    let from =
        pays_from.map_or("no size on this run".into(), |e| format!("2^{e} up"));
    let (size_exp, seq, thr, prc) = *sweep.last().expect("at least one size");
    let (st, sp) = (speedup(seq, thr), speedup(seq, prc));
    observe!(
        lab,
        "compute",
        "2^{size_exp} elements: sequential {sequential_ns}, {workers} threads \
         {threads_ns} ({st:.2}x), {workers} processes {processes_ns} ({sp:.2}x); \
         processes beat the loop from {from}",
        size_exp,
        workers,
        sequential_ns = Nanos(seq),
        threads_ns = Nanos(thr),
        processes_ns = Nanos(prc),
        processes_pay_from_exp = pays_from
    );
    let on = format!("compute 2^{size_exp} on {workers} workers (median)");
    table.compare(
        &on,
        Nanos(thr),
        Nanos(prc),
        times(prc.as_secs_f64(), thr.as_secs_f64()),
    );
    table.claim(
        &format!("both ways speed a large job up >= 1.5x on {workers} CPUs"),
        format!("{st:.2}x, {sp:.2}x at 2^{size_exp}"),
        st >= 1.5 && sp >= 1.5,
        false,
    );
    let (exp0, seq0, _, prc0) = sweep[0];
    table.claim(
        "processes lose on a small job",
        format!("2^{exp0}: {} vs {}", Nanos(prc0), Nanos(seq0)),
        prc0 > seq0,
        false,
    );
    check!(
        lab,
        "compute_parts_add_up",
        parts_add_up,
        "at every size the threads' parts and the processes' parts (written into a \
         MAP_SHARED page) added up to the plain loop's result"
    );
}

/// One u64 per worker in an anonymous MAP_SHARED mapping: children forked after it was
/// made write into the same physical page the parent reads (fork does not copy it).
struct Slots {
    ptr: NonNull<libc::c_void>,
    len: NonZeroUsize,
}

impl Slots {
    fn new(n: usize) -> Slots {
        let len = NonZeroUsize::new((n * 8).max(4096)).expect("non-zero");
        let rw = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
        // SAFETY: a fresh anonymous mapping, touching no existing memory.
        let ptr = unsafe { mmap_anonymous(None, len, rw, MapFlags::MAP_SHARED) }
            .or_die("mmap");
        Slots { ptr, len }
    }

    fn at(&self, k: usize) -> *mut u64 {
        assert!((k + 1) * 8 <= self.len.get(), "slot {k} is in the mapping");
        // SAFETY: in bounds (asserted above).
        unsafe { self.ptr.cast::<u64>().as_ptr().add(k) }
    }

    /// Write slot `k` (async-signal-safe: a forked child may call it).
    fn put(&self, k: usize, v: u64) {
        // SAFETY: an aligned u64 inside our mapping; one writer per slot.
        unsafe { self.at(k).write_volatile(v) }
    }

    /// Read slot `k`, once its writer has exited.
    fn get(&self, k: usize) -> u64 {
        // SAFETY: an aligned u64 inside our mapping; its writer has exited.
        unsafe { self.at(k).read_volatile() }
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        // SAFETY: our own mapping, no longer used.
        let _ = unsafe { munmap(self.ptr, self.len.get()) };
    }
}
