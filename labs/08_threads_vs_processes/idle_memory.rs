//! Section 2: idle workers, asleep in read(2) on one pipe, and what each costs in
//! memory: the growth of RSS, PSS (/proc/PID/smaps_rollup) and page tables (VmPTE),
//! summed over the parent and, for processes, every child.

use crate::claims::{times, Table};
use crate::memory::{asleep_in_read, memory_of, threads_in_read, Mem};
use crate::wait::{reap, JoinOrDie};
use nix::unistd::{getpid, pipe, read, ForkResult, Pid};
use proclab::_exit;
use proclab::lifeline::die_with_parent;
use proclab::{check, cleanup, flush_stdout, observe, procfacts, say, Lab, OrDie};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

/// `n` idle threads: how much the process grew, and how many threads were seen asleep.
fn idle_threads(lab: &mut Lab, n: u32) -> (Mem, usize) {
    let me = getpid().as_raw();
    let before = memory_of(&[me]);
    // They sleep in read(2) on it until EOF.
    let (wake_r, wake_w) = pipe().or_die("pipe");
    // ANCHOR: idle_threads
    let idle: Vec<_> = (0..n)
        .map(|_| {
            let fd = wake_r.as_raw_fd();
            std::thread::spawn(move || {
                let mut b = [0u8; 1];
                // SAFETY: reads into a local buffer; 0 once wake_w is closed.
                unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) }
            })
        })
        .collect();
    let want = n as usize;
    let seen = procfacts::poll_until(Duration::from_secs(10), || {
        (threads_in_read(me) == want).then_some(want)
    });
    let grew = memory_of(&[me]).minus(&before);
    // ANCHOR_END: idle_threads
    let asleep = seen.unwrap_or_else(|| threads_in_read(me));
    observe!(
        lab,
        "memory",
        "{n} idle threads ({asleep} seen asleep in read(2)): the process grew by RSS \
         {rss_kib} KiB, PSS {pss_kib} KiB, page tables {pte_kib} KiB",
        way = "thread",
        workers = n,
        asleep,
        rss_kib = grew.rss,
        pss_kib = grew.pss,
        pte_kib = grew.pte
    );
    drop(wake_w); // EOF: every thread's read returns 0
    for t in idle {
        t.join().or_die_thread();
    }
    (grew, asleep)
}

/// `n` idle forked children: how much the parent and the children grew, summed, and how
/// many children were seen asleep. `way` names them in the observation.
fn idle_processes(lab: &mut Lab, n: u32, way: &str) -> (Mem, usize) {
    let me = getpid().as_raw();
    let before = memory_of(&[me]);
    let (wake_r, wake_w) = pipe().or_die("pipe");
    // Tests only: each child waits in poll(2) before its read(2).
    let in_poll = proclab::test_removes("idle_in_poll");
    // ANCHOR: idle_processes
    let mut kids: Vec<Pid> = Vec::new();
    for _ in 0..n {
        flush_stdout();
        // SAFETY: the child only calls prctl, getppid, close, read and _exit
        // (and, in a test only, poll).
        match unsafe { cleanup::fork_tracked() } {
            ForkResult::Child => {
                die_with_parent(me);
                // SAFETY: close(2) of this child's copy, or EOF never comes.
                unsafe { libc::close(wake_w.as_raw_fd()) };
                poll_first(&wake_r, in_poll); // tests only: asleep elsewhere
                let _ = read(wake_r.as_fd(), &mut [0u8; 1]); // until EOF
                _exit(0)
            }
            ForkResult::Parent { child } => kids.push(child), // and tracked
        }
    }
    let in_read = || kids.iter().filter(|k| asleep_in_read(k.as_raw(), k.as_raw()));
    let asleep = procfacts::poll_until(Duration::from_secs(10), || {
        (in_read().count() == kids.len()).then_some(kids.len())
    })
    .unwrap_or_else(|| in_read().count());
    let mut group: Vec<i32> = kids.iter().map(|k| k.as_raw()).collect();
    group.push(me); // the parent and every child
    let grew = memory_of(&group).minus(&before);
    // ANCHOR_END: idle_processes
    observe!(
        lab,
        "memory",
        "{n} idle processes (pids {pid_range}, {asleep} seen asleep in read(2)): RSS \
         summed over them grew by {rss_kib} KiB, PSS by {pss_kib} KiB, page tables by \
         {pte_kib} KiB",
        pid_range = format!("{} to {}", kids[0], kids[kids.len() - 1]),
        way,
        workers = n,
        asleep,
        pids = &group[..group.len() - 1],
        forked = true,
        rss_kib = grew.rss,
        pss_kib = grew.pss,
        pte_kib = grew.pte
    );
    drop((wake_r, wake_w)); // EOF: every child's read returns 0
    for k in kids {
        reap(k);
    }
    (grew, asleep)
}

/// Tests only (`idle_in_poll`): wait for the pipe's EOF in poll(2) first, so that the
/// worker sleeps, but not in read(2). Async-signal-safe.
fn poll_first(fd: &OwnedFd, yes: bool) {
    if yes {
        let mut p =
            libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one live pollfd; returns at EOF (POLLHUP).
        unsafe { libc::poll(&mut p, 1, -1) };
    }
}

pub fn run(lab: &mut Lab, table: &mut Table, n: u32, as_processes: bool) {
    say!(
        "{n} threads, then {n} processes, each asleep in read(2) on the same pipe"
    );
    let (thread, threads_asleep) = if as_processes {
        idle_processes(lab, n, "thread") // tests only: the "threads" are processes
    } else {
        idle_threads(lab, n)
    };
    let (process, asleep) = idle_processes(lab, n, "process");
    let per = |kib: i64| kib as f64 / n as f64;
    let thread_kib = per(thread.pss + thread.pte);
    let process_kib = per(process.pss + process.pte);
    let (t, p) = (format!("{thread_kib:.0} KiB"), format!("{process_kib:.0} KiB"));
    let more = times(process_kib, thread_kib);
    table.compare("memory per idle worker (PSS + page tables)", &t, &p, more);
    let (rt, rp) = (per(thread.rss), per(process.rss));
    let by_rss = (format!("{rt:.0} KiB"), format!("{rp:.0} KiB"));
    table.compare(
        "  the same, by RSS summed as `ps` would",
        by_rss.0,
        by_rss.1,
        times(rp, rt),
    );
    let mem_more = more >= 2.0;
    let rss_overstates = process.rss > 2 * process.pss.max(1);
    table.claim(
        "an idle process costs over twice the memory of an idle thread",
        format!("{thread_kib:.0} vs {process_kib:.0} KiB"),
        mem_more,
        true,
    );
    table.claim(
        "summing RSS over processes counts shared pages N times",
        format!("RSS {} vs PSS {} KiB", process.rss, process.pss),
        rss_overstates,
        true,
    );
    let n = n as usize;
    check!(
        lab,
        "idle_workers_asleep",
        threads_asleep == n && asleep == n,
        "every idle worker was seen asleep (state S) inside read(2) (the call \
         /proc/PID/task/TID/syscall names) before its memory was read \
         ({threads_asleep} of {n} threads, {asleep} of {n} processes)",
        threads_asleep,
        asleep,
        n
    );
    check!(
        lab,
        "process_costs_more_memory",
        mem_more,
        "an idle process costs over twice an idle thread in PSS + page tables \
         ({process_kib:.0} vs {thread_kib:.0} KiB per worker)",
        process_kib,
        thread_kib
    );
    check!(
        lab,
        "rss_overstates_processes",
        rss_overstates,
        "RSS summed over the processes ({rss_kib} KiB) is more than twice their PSS \
         ({pss_kib} KiB): fork shares pages",
        rss_kib = process.rss,
        pss_kib = process.pss
    );
}
