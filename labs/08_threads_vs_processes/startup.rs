//! Section 1: start a worker that does nothing and wait for it, a thread against a
//! forked process. The two ways alternate, so that a burst of load hits both alike, and
//! the claim is judged on the fastest run of each: other programs can only add time.

use crate::claims::{times, Table};
use crate::wait::JoinOrDie;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};
use proclab::_exit;
use proclab::{
    check, flush_stdout, observe, Lab, Nanos, OrDie, Stopwatch, Summary,
};

// ANCHOR: spawn
/// A thread that does nothing, joined: clone(CLONE_VM | CLONE_THREAD | ...).
fn spawn_and_join() {
    std::thread::spawn(|| ()).join().or_die_thread();
}

/// A child that only exits, reaped: the cost includes its exit and the wait.
fn fork_and_reap() {
    flush_stdout();
    // SAFETY: the child only calls _exit (it ends at once: no lifeline needed).
    match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => _exit(0),
        ForkResult::Parent { child } => {
            waitpid(child, None).or_die("waitpid"); // it only exits: short
        }
    }
}
// ANCHOR_END: spawn

pub fn run(lab: &mut Lab, table: &mut Table, n: u32, as_processes: bool) {
    // ANCHOR: alternate
    let (mut thread_runs, mut fork_runs) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let sw = Stopwatch::start();
        if as_processes {
            fork_and_reap(); // tests only: the "thread" is a process
        } else {
            spawn_and_join();
        }
        thread_runs.push(sw.elapsed());
        let sw = Stopwatch::start();
        fork_and_reap();
        fork_runs.push(sw.elapsed());
    }
    let (threads, forks) = (Summary::of(&thread_runs), Summary::of(&fork_runs));
    // ANCHOR_END: alternate
    for (way, s, label) in [
        ("thread", &threads, "thread::spawn + join:  "),
        ("process", &forks, "fork + _exit + waitpid:"),
    ] {
        observe!(
            lab,
            "spawn",
            "{label} min {min_ns} / median {median_ns} / p99 {p99_ns} (n={n})",
            way,
            n = s.n,
            min_ns = Nanos(s.min),
            median_ns = Nanos(s.median),
            p99_ns = Nanos(s.p99)
        );
    }
    let ratio = times(forks.min.as_secs_f64(), threads.min.as_secs_f64());
    let med = times(forks.median.as_secs_f64(), threads.median.as_secs_f64());
    let (t, f) = (Nanos(threads.min), Nanos(forks.min));
    table.compare(
        "start + join one worker (median)",
        Nanos(threads.median),
        Nanos(forks.median),
        med,
    );
    table.claim(
        "a thread starts at least twice as fast as a process",
        format!("fastest {t} vs {f}"),
        ratio >= 2.0,
        true,
    );
    check!(
        lab,
        "thread_starts_faster",
        ratio >= 2.0,
        "a thread started and joined at least twice as fast as a process forked \
         and reaped (fastest of {n} each: {ratio:.1}x)",
        n,
        thread_ns = t,
        process_ns = f,
        ratio
    );
}
