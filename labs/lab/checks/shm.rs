//! Checks of the shared-memory exercises (chapter 6).

use super::{exited_cleanly, most_at_once, run_to_end};
use crate::observer::Observer;
use nix::fcntl::OFlag;
use nix::sys::mman::{mmap, munmap, shm_open, shm_unlink, MapFlags, ProtFlags};
use nix::sys::stat::Mode;
use proclab::{check, cleanup, observe, Lab, OrDie};
use std::num::NonZeroUsize;
use std::time::Duration;

/// shm-counter: the counter in the segment the checker made is exactly 2 x N, and the
/// two children ran at the same time, each using the CPU.
pub fn counter(lab: &mut Lab, obs: &mut Observer) {
    let n: u64 = 100_000;
    let name = format!("/proclab-check-{}", obs.me);
    let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR;
    let fd = shm_open(name.as_str(), flags, Mode::from_bits_truncate(0o600))
        .or_die("shm_open");
    cleanup::track_shm(&name);
    nix::unistd::ftruncate(&fd, 4096).or_die("ftruncate");
    let len = NonZeroUsize::new(4096).expect("4096");
    let prot = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
    // SAFETY: a fresh shared mapping of the segment; unmapped below, read only here.
    let map = unsafe { mmap(None, len, prot, MapFlags::MAP_SHARED, &fd, 0) }
        .or_die("mmap");
    let (pid, end) =
        run_to_end(lab, obs, &[&name, &n.to_string()], Duration::from_secs(60));
    // SAFETY: the mapping is 4096 bytes; the program has ended (or is killed below).
    let total = unsafe { std::ptr::read_volatile(map.as_ptr() as *const u64) };
    // SAFETY: `map` came from mmap above with this length and is not used again.
    let _ = unsafe { munmap(map, 4096) };
    if shm_unlink(name.as_str()).is_ok() {
        cleanup::forget_shm(&name);
    }
    let (kids, together, cpu) = obs.view(|tl| {
        let kids = tl.children_of(pid);
        let cpu: Vec<u64> = kids.iter().map(|k| k.utime + k.stime).collect();
        (kids.len(), most_at_once(&kids), cpu)
    });
    observe!(lab, "counter", "the counter in {name} is {total}; your program's children: {kids}, CPU ticks {cpu:?}", name, total, kids, cpu);
    check!(
        lab,
        "both_worked",
        kids == 2 && cpu.iter().all(|&t| t >= 1),
        "two children increment, each using the CPU (seen: {kids} children, CPU in clock \
         ticks {cpu:?})"
    );
    check!(
        lab,
        "together",
        together == 2,
        "the two run at the same time (seen: at most {together} at once)"
    );
    let lost = (2 * n).saturating_sub(total);
    check!(
        lab,
        "exact",
        total == 2 * n,
        "the count is exact: {expected} (seen: {total}, {lost} updates lost)",
        expected = 2 * n
    );
    exited_cleanly(lab, end);
}

/// shm-unlink: once both processes map the segment, SIGKILL them; no name may be left.
pub fn unlink(lab: &mut Lab, obs: &mut Observer) {
    let name = format!("/proclab-check-{}", obs.me);
    let path = format!("/dev/shm{name}");
    cleanup::track_shm(&name); // whatever the program does, the check leaves nothing
    let pid = obs.spawn(std::slice::from_ref(&name));
    let maps = |p: i32| {
        std::fs::read_to_string(format!("/proc/{p}/maps")).unwrap_or_default()
    };
    let mapped = obs.until(Duration::from_secs(5), |tl| {
        let mut who = vec![pid];
        who.extend(
            tl.children_of(pid).iter().filter(|c| c.running()).map(|c| c.pid),
        );
        let m: Vec<i32> =
            who.into_iter().filter(|&p| maps(p).contains(&path)).collect();
        (m.len() >= 2).then_some(m)
    });
    let both = mapped.clone().unwrap_or_default();
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = obs.end_of(pid, Duration::from_secs(2));
    let left = std::path::Path::new(&path).exists();
    observe!(lab, "killed", "{both:?} mapped {path}; the checker killed them (SIGKILL); the name is {state}", both, path, state = if left { "still there" } else { "gone" });
    check!(
        lab,
        "mapped",
        mapped.is_some(),
        "your program and its child both map the segment (seen: {both:?})"
    );
    check!(
        lab,
        "no_name_left",
        mapped.is_some() && !left,
        "after SIGKILL, {path} is gone (seen: {state})",
        state = if left { "still there" } else { "gone" }
    );
    if shm_unlink(name.as_str()).is_ok() || !left {
        cleanup::forget_shm(&name);
    }
}
