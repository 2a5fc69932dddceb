//! The counters of sections 3 to 5, in one shared anonymous mapping, and the processes
//! that count: each pinned to a CPU of its own where there are enough, released at
//! once, and waiting at a barrier so that their loops overlap. Each run is observed
//! here, once, whatever it counted with.

use crate::children::{spin_until, Gate, LIMIT};
use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{getpid, ForkResult};
use proclab::wait::waitpid_by;
use proclab::Nanos;
use proclab::{
    cleanup, cpu, flush_stdout, lifeline, observe, Deadline, Lab, OrDie,
};
use std::num::NonZeroUsize;
use std::ptr::{addr_of_mut, NonNull};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Everything the counting processes share. Zero-filled when mapped: every counter
/// starts at 0. The padding keeps `plain` and `atomic` on cache lines of their own.
#[repr(C)]
pub struct Counters {
    pub plain: u64,
    _pad0: [u8; 56],
    pub atomic: AtomicU64,
    _pad1: [u8; 56],
    pub locked: u64,      // incremented under the mutex
    pub sem_counted: u64, // incremented under the semaphore
    arrived: AtomicU64,   // the barrier: how many counting processes are running
    pub mutex: libc::pthread_mutex_t,
    pub sem: libc::sem_t,
    /// The mutex the counting processes lock: `mutex` (tests only: a private one).
    pub lock_at: *mut libc::pthread_mutex_t,
}

impl Counters {
    /// A fresh `MAP_SHARED | MAP_ANONYMOUS` mapping, inherited by every child forked
    /// after it.
    pub fn map() -> *mut Counters {
        let len = NonZeroUsize::new(size_of::<Counters>()).expect("non-zero");
        let rw = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
        // SAFETY: a fresh anonymous mapping; nothing else refers to it.
        let p = unsafe { mmap_anonymous(None, len, rw, MapFlags::MAP_SHARED) };
        p.or_die("mmap").cast::<Counters>().as_ptr()
    }

    /// Destroy the semaphore and the mutex and unmap (no process uses them any more).
    pub fn unmap(c: *mut Counters) {
        // SAFETY: every child is gone; nothing uses the mapping after this.
        unsafe {
            libc::sem_destroy(addr_of_mut!((*c).sem));
            libc::pthread_mutex_destroy(addr_of_mut!((*c).mutex));
            let p = NonNull::new(c.cast()).expect("mapped");
            munmap(p, size_of::<Counters>()).or_die("munmap");
        }
    }
}

/// What one counting process does: `iters` increments of one counter at `c`.
pub type Work = unsafe fn(c: *mut Counters, iters: u64);

/// One counting run: what was expected, what was counted, and how it went.
pub struct Count {
    pub method: &'static str,
    pub expected: u64,
    pub actual: u64,
    pub took: Duration,
    /// Every counting process exited 0 (none hung or died).
    pub all_exited: bool,
}

impl Count {
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.actual)
    }
}

/// `procs` processes each run `work(c, iters)`, all at once; then `counted()` reads
/// the total. Observed as a `counter`, and returned.
pub fn count(
    lab: &mut Lab,
    c: *mut Counters,
    method: &'static str,
    (procs, iters): (usize, u64),
    work: Work,
    counted: impl Fn() -> u64,
) -> Count {
    let parent = getpid().as_raw();
    let cpus = cpu::allowed();
    // SAFETY: no child is running yet; the parent alone touches the mapping.
    let arrived = unsafe { &(*c).arrived };
    arrived.store(0, Ordering::SeqCst);
    let gate = Gate::new(); // opening it (closing its write end) releases them all
    let mut kids = Vec::new();
    for i in 0..procs {
        flush_stdout();
        // SAFETY: the child pins itself, reads the gate, works on the shared mapping
        // (no heap; only the process-shared locks in the mapping) and _exits.
        match unsafe { cleanup::fork_tracked() } {
            ForkResult::Child => unsafe {
                lifeline::die_with_parent(parent);
                let _ = cpu::pin(cpus[i % cpus.len()]); // a CPU of its own
                gate.wait(); // EOF when the parent opens the gate
                arrived.fetch_add(1, Ordering::SeqCst); // then wait for all, so
                spin_until(None, || arrived.load(Ordering::SeqCst) >= procs as u64);
                work(c, iters); // that their loops overlap
                libc::_exit(0)
            },
            ForkResult::Parent { child } => kids.push(child),
        }
    }
    let sw = gate.open(); // go
    let per_op = Duration::from_micros(5) * procs as u32;
    // Generous: a sibling that died before the barrier would stall the others.
    let by = Deadline::after(LIMIT + per_op * iters.min(u32::MAX as u64) as u32);
    let (mut all_exited, mut statuses) = (true, Vec::new());
    for &k in &kids {
        let st = waitpid_by(k, by).unwrap_or_else(|| {
            let _ = kill(k, Signal::SIGKILL); // hung: observed as not all exited
            proclab::Status(waitpid(k, None))
        });
        cleanup::forget(k);
        all_exited &= st.code() == Some(0);
        statuses.push(st);
    }
    let took = sw.elapsed();
    let expected = procs as u64 * iters;
    let run = Count { method, expected, actual: counted(), took, all_exited };
    let (actual, lost) = (run.actual, run.lost());
    observe!(
        lab,
        "counter",
        "{method}: expected {expected}, counted {actual}, lost {lost} in {ns}",
        method,
        procs,
        iters,
        expected,
        actual,
        lost,
        ns = Nanos(took),
        all_exited,
        pids = kids.iter().map(|k| k.as_raw()).collect::<Vec<_>>(),
        forked = true,
        statuses
    );
    run
}
