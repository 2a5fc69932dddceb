//! CPU placement: pin the caller to one CPU, or give it every CPU back. A wake-up on
//! another CPU costs several times one on the same CPU, so benchmarks and labs that time
//! a round trip say where each side ran.

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// Pin the calling thread (or a process before it starts threads) to CPU `cpu`.
/// Async-signal-safe (one system call), so a forked child may call it.
pub fn pin(cpu: usize) -> nix::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu)?;
    sched_setaffinity(Pid::from_raw(0), &set) // 0: the calling thread
}

/// Allow the calling thread on every online CPU again.
pub fn unpin() -> nix::Result<()> {
    let mut set = CpuSet::new();
    for cpu in 0..cpus() {
        set.set(cpu)?;
    }
    sched_setaffinity(Pid::from_raw(0), &set)
}

/// Allow the calling thread on `cpus` again: what [`allowed`] returned before a
/// [`pin`]. Unlike [`unpin`], it keeps a `taskset` the lab was started under.
pub fn allow(cpus: &[usize]) -> nix::Result<()> {
    let mut set = CpuSet::new();
    for &cpu in cpus {
        set.set(cpu)?;
    }
    sched_setaffinity(Pid::from_raw(0), &set)
}

/// The CPUs the calling thread may run on now.
pub fn allowed() -> Vec<usize> {
    let Ok(set) = sched_getaffinity(Pid::from_raw(0)) else {
        return vec![0];
    };
    (0..CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false)).collect()
}

/// How many CPUs are online (`sysconf(_SC_NPROCESSORS_ONLN)`), at least 1.
pub fn cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    n.max(1) as usize
}
