//! Section 3: the child writes one byte into each of K pages of the shared region. Each
//! first write to a shared page faults; the kernel copies that page for the writer. The
//! child's minor faults rise by K, K pages become private, and the parent's data stays.

use crate::region::{Region, PAGE};
use crate::shared_after_fork::Child;
use crate::smaps::Smaps;
use nix::errno::Errno;
use nix::unistd::getpid;
use proclab::_exit;
use proclab::clock::now_ns;
use proclab::wait::waitpid_by;
use proclab::Nanos;
use proclab::{
    check, cleanup, die, fdio, observe, procfacts, Deadline, Lab, OrDie,
};
use std::os::fd::OwnedFd;
use std::time::Duration;

// ANCHOR: child_writes
/// The child, after fork: say it is ready, wait for the number of pages to
/// write, write into each twice, say how long each pass took, wait for EOF.
pub fn child(region: &Region, cmd: &OwnedFd, rep: &OwnedFd, skip: bool) -> ! {
    let _ = fdio::write_all(rep, b"r"); // ready: look at our smaps now
    let mut n = [0u8; 8];
    if fdio::read_full(cmd, &mut n) != Ok(8) {
        _exit(1)
    }
    let n = if skip { 0 } else { u64::from_ne_bytes(n) as usize }; // tests only
    let t0 = now_ns();
    for p in 0..n {
        region.write_page(p, 2); // a shared page: a fault, then a copy
    }
    let t1 = now_ns();
    for p in 0..n {
        region.write_page(p, 3); // its own page now: a plain write
    }
    let t2 = now_ns();
    let _ = fdio::write_all(rep, &(t1 - t0).to_ne_bytes());
    let _ = fdio::write_all(rep, &(t2 - t1).to_ne_bytes());
    let _ = fdio::read_full(cmd, &mut [0u8; 1]); // EOF: the parent has looked
    _exit(0)
}
// ANCHOR_END: child_writes

pub fn run(lab: &mut Lab, child: Child, k: usize) {
    let (c, me) = (child.pid.as_raw(), getpid().as_raw());
    let minflt = || procfacts::facts(c).map(|f| f.minflt).unwrap_or(0);
    // ANCHOR: faults
    let minflt_before = minflt();
    fdio::write_all(&child.cmd, &(k as u64).to_ne_bytes()).or_die("write"); // go
    let mut took = [0u8; 16];
    child.hear(lab, &mut took); // done, and how long each pass took
    let minflt_after = minflt();
    let child_m = Smaps::of(c, child.region.addr());
    let parent_m = Smaps::of(me, child.region.addr());
    // ANCHOR_END: faults
    let minflt_delta = minflt_after.saturating_sub(minflt_before);
    let ns = |b: &[u8]| u64::from_ne_bytes(b.try_into().unwrap_or_default());
    let (write_ns, rewrite_ns) = (ns(&took[..8]), ns(&took[8..]));
    let per_page = |ns: u64| Nanos(Duration::from_nanos(ns / k as u64));
    let (first, again) = (per_page(write_ns), per_page(rewrite_ns));
    let cow_over_plain = write_ns as f64 / rewrite_ns.max(1) as f64;
    observe!(
        lab,
        "faults",
        "child wrote {k} pages: its minor faults (/proc/{c}/stat) went \
         {minflt_before} -> {minflt_after} (+{minflt_delta}); per page, the first \
         write (a fault and a copy) took {first}, the second (its own page now) \
         {again}: {cow_over_plain:.0} times less",
        pid = c,
        pages_written = k,
        minflt_before,
        minflt_after,
        minflt_delta,
        write_ns,
        rewrite_ns,
        cow_over_plain
    );
    let region_kib = (child.region.len() / 1024) as u64;
    child_m.observe(lab, "after_writes", "child", c, region_kib);
    parent_m.observe(lab, "after_writes", "parent", me, region_kib);
    let parent_sees = child.region.holds(k, 1); // its own value, 1, in every page
    drop(child.cmd); // the child's last read returns EOF: it exits
    let status = waitpid_by(child.pid, Deadline::after(Duration::from_secs(10)))
        .unwrap_or_else(|| {
            die("waitpid (the child did not end)", Errno::ETIMEDOUT)
        });
    cleanup::forget(child.pid);
    let rows = [
        child.after_fork.row("child after fork"),
        child_m.row("child after writes"),
        parent_m.row("parent after writes"),
    ];
    let heads = ["", "Rss KiB", "Pss KiB", "Shared_Dirty KiB", "Private_Dirty KiB"];
    lab.table("region", &heads, &rows);
    // ANCHOR: checks
    let (kk, k64) = ((k * PAGE / 1024) as u64, k as u64); // KiB written, pages
    check!(
        lab,
        "faults_match_pages_written",
        minflt_delta >= k64 && minflt_delta <= k64 + k64 / 20 + 32,
        "the child's minor faults rose by {minflt_delta} for {k} pages written \
         (about one per page)",
        minflt_delta,
        k
    );
    let shared_before = child.after_fork.shared_dirty;
    check!(
        lab,
        "shared_portion_shrinks",
        child_m.private_dirty == kk && child_m.shared_dirty + kk == shared_before,
        "{private_kib} KiB of the child's region became private (of {kk} KiB \
         written) and the shared part shrank from {shared_before} to \
         {shared_kib} KiB",
        private_kib = child_m.private_dirty,
        kk,
        shared_before,
        shared_kib = child_m.shared_dirty
    );
    // ANCHOR_END: checks
    check!(
        lab,
        "parent_data_unchanged",
        parent_sees && status.code() == Some(0),
        "the parent still reads its own values in the pages the child overwrote: \
         {parent_sees} (the child wrote into its copies); the child {status}",
        parent_sees,
        pid = child.pid.as_raw(),
        status
    );
}
