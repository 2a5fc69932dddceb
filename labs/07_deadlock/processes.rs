//! Scenario 3: two processes, two `flock` locks, opposite order. Both sleep, /proc/locks
//! shows the cycle, killing one releases its locks; the fix: the same order in both.

use crate::lockfiles::{Gate, LockFiles};
use crate::procview::{lock_cycle, proc_locks};
use crate::watch::{hold, reap_all, since};
use crate::{Args, Row};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{getpid, ForkResult, Pid};
use proclab::_exit;
use proclab::measure::fmt_duration;
use proclab::{
    check, cleanup, clock, flush_stdout, lifeline, observe, procfacts, say,
};
use proclab::{Deadline, Lab, OrDie, State, Status, Watchdog};
use std::ffi::CStr;
use std::os::fd::RawFd;

#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    Flock,
    Fcntl,
}

/// Take an exclusive lock on `fd`, waiting for it: 0, or the errno.
fn lock_file(kind: Kind, fd: RawFd) -> i32 {
    let r = match kind {
        // SAFETY: flock on a descriptor; one lock per open file, no cycle check.
        Kind::Flock => unsafe { libc::flock(fd, libc::LOCK_EX) },
        Kind::Fcntl => {
            // SAFETY: a plain C struct; all zeroes is l_start 0, l_len 0: the whole file.
            let mut fl: libc::flock = unsafe { std::mem::zeroed() };
            fl.l_type = libc::F_WRLCK as i16;
            fl.l_whence = libc::SEEK_SET as i16;
            // SAFETY: a record lock; the kernel checks for cycles before it sleeps.
            unsafe { libc::fcntl(fd, libc::F_SETLKW, &fl) }
        }
    };
    if r == 0 {
        0
    } else {
        Errno::last_raw()
    }
}

// ANCHOR: lock_child
/// A child: open both files itself, lock `first`, say ready, wait for go, lock
/// `second`. Exits 0 if it got both, or with the errno of the failed lock.
fn lock_child(kind: Kind, first: &CStr, second: &CStr, g: &Gate) -> ! {
    // SAFETY: open is async-signal-safe; each child has its own open files.
    let (fa, fb) = unsafe {
        let rw = libc::O_RDWR;
        (libc::open(first.as_ptr(), rw), libc::open(second.as_ptr(), rw))
    };
    lock_file(kind, fa);
    g.ready(); // "I hold my first lock"
    g.wait_go(); // the barrier: the lab says go when both hold one
    let err = lock_file(kind, fb); // sleeps while the other process holds it
    if err != 0 {
        say!("lock on the second file failed: errno {err} (EDEADLK = 35)");
    } else {
        say!("got the second lock, finishing");
    }
    // _exit is async-signal-safe; the exit status carries the errno.
    _exit(err)
}
// ANCHOR_END: lock_child

/// Fork a child that runs lock_child, and the gate through which it says "ready" and
/// hears "go".
pub fn fork_lock_child(kind: Kind, [first, second]: [&CStr; 2]) -> (Pid, Gate) {
    let g = Gate::new();
    let lab = getpid().as_raw();
    flush_stdout();
    // SAFETY: lock_child makes async-signal-safe calls only and leaves with _exit.
    match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            lifeline::die_with_parent(lab); // even a SIGKILLed lab takes it along
            lock_child(kind, first, second, &g)
        }
        ForkResult::Parent { child } => (child, g),
    }
}

/// The order of child 2: lock-b, then lock-a (tests only: child 1's order, no cycle).
pub fn second_order(files: &LockFiles) -> [&CStr; 2] {
    let [a, b] = [files.paths[0].as_c_str(), files.paths[1].as_c_str()];
    match proclab::test_removes("same_file_order") {
        false => [b, a],
        true => [a, b],
    }
}

/// A child asleep in the kernel, as a fact.
#[derive(serde::Serialize)]
struct Asleep {
    pid: i32,
    state: State,
    wchan: String,
}

/// In the lab: the flock deadlock, seen, broken; then the fix.
pub fn run(lab: &mut Lab, args: &Args, files: &LockFiles) -> Row {
    let deadline = args.deadline();
    let ab = [files.paths[0].as_c_str(), files.paths[1].as_c_str()];
    say!(
        "flock: child 1 locks lock-a then lock-b, child 2 locks lock-b then lock-a"
    );
    let t0 = clock::lab_ns();
    let (c1, g1) = fork_lock_child(Kind::Flock, ab);
    let (c2, g2) = fork_lock_child(Kind::Flock, second_order(files));
    let until = Deadline::after(deadline); // lab time: a --step pause does not count
    let both_hold = g1.ready_by(until) && g2.ready_by(until);
    g1.go(); // both hold their first lock: now each asks for its second
    g2.go();
    let asked = clock::lab_ns();
    // ANCHOR: proc_locks
    let asleep = |p: Pid| procfacts::state(p.as_raw()) == Some('S'); // not spinning
    let pids = [c1.as_raw(), c2.as_raw()];
    let seen = procfacts::poll_until(until.remaining(), || {
        let (edges, lines) = lock_cycle(&proc_locks(), pids, &files.files)?;
        (asleep(c1) && asleep(c2)).then(|| (edges, lines, since(asked)))
    });
    // ANCHOR_END: proc_locks
    let mut cycle = false;
    if let Some((edges, lines, after)) = &seen {
        let wchan =
            |p: Pid| procfacts::wchan(p.as_raw()).unwrap_or_else(|| "-".into());
        let (w1, w2) = (wchan(c1), wchan(c2));
        cycle = both_hold && w1.contains("lock") && w2.contains("lock");
        let hop = |e: &crate::procview::LockEdge| {
            let (p, h, w, b) = (e.pid, e.holds, e.waits_for, e.held_by);
            format!("child {p} holds {h}, waits for {w} (held by {b})")
        };
        let chain = edges.iter().map(hop).collect::<Vec<_>>().join("\n    ");
        let (t, shown) = (fmt_duration(*after), lines.join("\n      "));
        let states = [(c1, &w1), (c2, &w2)].map(|(p, w)| Asleep {
            pid: p.as_raw(),
            state: State('S'),
            wchan: w.clone(),
        });
        observe!(lab, "cycle",
            "/proc/locks, {t} after both asked:\n      {shown}\n    {chain}\n    both in state S: {c1} in {w1}, {c2} in {w2}",
            scenario = "processes", lock = "flock", edges, states, proc_locks = lines,
            detected_after_us = after.as_micros() as u64);
    }
    lab.show_tree(getpid());
    check!(lab, "processes_cycle_seen", cycle,
        "processes: both children asleep (S) in a file-lock wait, and /proc/locks shows each holding the lock the other waits for");
    hold(
        lab,
        args.hold_ms,
        c2,
        "`cat /proc/locks`, `lslocks` or `cat /proc/PID/wchan`",
    );
    // ANCHOR: break_one
    kill(c2, Signal::SIGKILL).or_die("kill"); // the victim: its locks die with it
    let victim = Status(waitpid(c2, None));
    cleanup::forget(c2);
    let dog = Watchdog::arm(deadline, move || {
        let _ = kill(c1, Signal::SIGKILL);
    });
    let survivor = Status(waitpid(c1, None)); // it gets lock-b and finishes
    let fired = dog.disarm();
    cleanup::forget(c1);
    // ANCHOR_END: break_one
    observe!(
        lab,
        "broken",
        "broken: SIGKILL to {c2}, waitpid: {victim_status}; then {c1} {survivor_status}",
        scenario = "processes",
        signalled = [c2.as_raw()],
        sent = "SIGKILL",
        victim_status = victim,
        survivor_status = survivor,
        victim = c2.as_raw(),
        survivor = c1.as_raw(),
        watchdog_fired = fired,
        ended_after_ms = since(t0).as_millis() as u64,
        deadline_ms = args.deadline_ms
    );
    let broken = check!(
        lab,
        "processes_broken",
        victim.signal() == Some(Signal::SIGKILL)
            && survivor.code() == Some(0)
            && !fired,
        "processes: killing one process released its locks and the other finished"
    );

    // The fix: both processes take lock-a before lock-b.
    let t_fix = clock::lab_ns();
    let (c1, g1) = fork_lock_child(Kind::Flock, ab);
    let (c2, g2) = fork_lock_child(Kind::Flock, ab);
    g1.go();
    g2.go();
    let ([s1, s2], fired) = reap_all([c1, c2], deadline);
    let took = since(t_fix);
    let t = fmt_duration(took);
    observe!(
        lab,
        "fix",
        "same order (lock-a, then lock-b) in both: child 1 {s1}; child 2 {s2}; in {t}",
        scenario = "processes",
        finished = !fired,
        statuses = [s1, s2],
        elapsed_us = took.as_micros() as u64
    );
    let fix_ok = check!(lab, "processes_fix_finished",
        s1.code() == Some(0) && s2.code() == Some(0) && !fired,
        "processes: with one global order both processes got both locks and finished");
    let detected = seen.map(|s| s.2);
    let fix = "global order (+ EDEADLK)";
    Row { scenario: "processes", cycle, detected, broken, fix, fix_ok }
}
