//! Part 2: children meet different fates; the parent reads each from its status.
//! Chapter: book/src/01-fork.md

use crate::copy::who_first;
use crate::words::{recv, send};
use crate::{Args, DEADLINE};
use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet};
use nix::sys::signal::{raise, Signal};
use nix::sys::wait::WaitStatus;
use nix::unistd::{fork, getpid, pipe, read, ForkResult, Pid};
use proclab::_exit;
use proclab::clock::now_ns;
use proclab::wait::waitpid_by;
use proclab::{check, cleanup, flush_stdout, lifeline, observe, procfacts, say};
use proclab::{Deadline, Lab, OrDie, Status};
use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// How a child of part 2 ends.
#[derive(Clone, Copy, PartialEq)]
enum Fate {
    /// `_exit(code)`.
    Exit(i32),
    /// `raise(SIGKILL)`: the child kills itself.
    RaiseSigkill,
    /// The child blocks; the parent sends it SIGTERM.
    KilledByParent,
}

impl Fate {
    /// Child `i` of `n`: the last is killed by the parent, every fourth raises
    /// SIGKILL, the others exit with their own code (10 + i).
    fn of(i: u32, n: u32) -> Fate {
        if i + 1 == n {
            Fate::KilledByParent
        } else if i % 4 == 2 {
            Fate::RaiseSigkill
        } else {
            Fate::Exit(10 + i as i32)
        }
    }

    /// What `waitpid` should say of child `pid` given this fate.
    fn expected(self, pid: Pid) -> Status {
        Status::from(match self {
            Fate::Exit(code) => WaitStatus::Exited(pid, code),
            Fate::RaiseSigkill => WaitStatus::Signaled(pid, Signal::SIGKILL, false),
            Fate::KilledByParent => {
                WaitStatus::Signaled(pid, Signal::SIGTERM, false)
            }
        })
    }
}

impl fmt::Display for Fate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fate::Exit(code) => write!(f, "_exit({code})"),
            Fate::RaiseSigkill => f.write_str("raise(SIGKILL)"),
            Fate::KilledByParent => f.write_str("SIGTERM from the parent"),
        }
    }
}

// ANCHOR: fates
/// In a child of part 2: meet the fate it was given. Async-signal-safe.
fn live_out(fate: Fate, hold_rx: &OwnedFd, hold_tx: &OwnedFd) -> ! {
    match fate {
        Fate::Exit(code) => say!("exiting with status {code}"),
        Fate::RaiseSigkill => {
            say!("raising SIGKILL on myself");
            let _ = raise(Signal::SIGKILL); // dies here: no exit code
        }
        Fate::KilledByParent => {
            say!("blocking in read(2) until my parent kills me");
            // SAFETY: closes this child's copy of the write end (EOF if the
            // parent dies), which this process does not use again.
            unsafe { libc::close(hold_tx.as_raw_fd()) };
            let _ = read(hold_rx, &mut [0u8; 1]); // SIGTERM arrives here
        }
    }
    let code = if let Fate::Exit(code) = fate { code } else { 1 };
    // _exit leaves at once, without running the parent's destructors.
    _exit(code)
}
// ANCHOR_END: fates

pub fn run(lab: &mut Lab, args: &Args) {
    lab.section(&format!("2. {} children, each with its own fate", args.children));
    let parent = getpid();
    if proclab::test_removes("sigchld_ignored") {
        // Tests only: the kernel reaps the children itself and keeps no status.
        let ign =
            SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        // SAFETY: SIG_IGN installs no handler code.
        unsafe { sigaction(Signal::SIGCHLD, &ign) }.or_die("sigaction");
    }
    // Each child writes (index, start time) into `hello`. Nobody writes into
    // `hold`: a child reading it blocks until it is killed.
    let (hello_rx, hello_tx) = pipe().or_die("pipe");
    let (hold_rx, hold_tx) = pipe().or_die("pipe");
    // ANCHOR: many
    let mut kids: Vec<(Pid, Fate, u64)> = Vec::new();
    for i in 0..args.children {
        let fate = Fate::of(i, args.children);
        flush_stdout();
        // SAFETY: the child calls only async-signal-safe functions: prctl,
        // write, close, then live_out's read, raise and _exit.
        match unsafe { fork() }.or_die("fork") {
            ForkResult::Child => {
                lifeline::die_with_parent(parent.as_raw());
                send(&hello_tx, [i as u64, now_ns()]); // "I am running"
                drop(hello_tx); // our copy: EOF for the parent once all have run
                live_out(fate, &hold_rx, &hold_tx)
            }
            ForkResult::Parent { child } => {
                kids.push((child, fate, now_ns()));
                cleanup::track(child); // killed and reaped on every way out
            }
        }
    }
    // ANCHOR_END: many
    drop(hello_tx);
    let mut started = vec![0u64; kids.len()];
    let by = Deadline::after(DEADLINE);
    while started.contains(&0) {
        // None at end of file or at the deadline: a missing start time is reported.
        let Some([i, t]) = recv::<2>(&hello_rx, by) else { break };
        if let Some(slot) = started.get_mut(i as usize) {
            *slot = t;
        }
    }
    if !proclab::test_removes("no_sigterm") {
        // (tests only: without SIGTERM the blocked child never ends)
        // ANCHOR: kill
        for &(pid, fate, _) in &kids {
            if fate == Fate::KilledByParent {
                kill(pid, Signal::SIGTERM).or_die("kill"); // default action: end
                say!("sent SIGTERM to {pid}");
            }
        }
        // ANCHOR_END: kill
    }
    let pids: Vec<i32> = kids.iter().map(|k| k.0.as_raw()).collect();
    let n = kids.len();
    let signalled: Vec<i32> = kids
        .iter()
        .filter(|k| {
            k.1 == Fate::KilledByParent && !proclab::test_removes("no_sigterm")
        })
        .map(|k| k.0.as_raw())
        .collect();
    observe!(
        lab,
        "forked",
        "{n} children forked; SIGTERM sent to {signalled:?}; none reaped yet:",
        pids,
        n,
        signalled,
        sent = "SIGTERM"
    );
    lab.show_tree(parent);
    if !lab.stepping() && args.linger_ms > 0 {
        let ms = args.linger_ms;
        say!(
            "the children stay unreaped {ms} ms: look with ps now (or use --step)"
        );
        std::thread::sleep(Duration::from_millis(ms)); // only so a person can look
    }

    // ANCHOR: reap
    let by = Deadline::after(DEADLINE);
    let mut ended = Vec::new();
    for _ in 0..n {
        // Any child (-1), in the order they died; its status says how it ended.
        let Some(status) = waitpid_by(Pid::from_raw(-1), by) else {
            let why = format!("a child was still running after {DEADLINE:?}");
            lab.not_observed("every_status_decoded", why);
        };
        let Some(pid) = status.0.ok().and_then(|s| s.pid()) else {
            no_status_kept(lab, &kids, status); // ECHILD
        };
        cleanup::forget(pid);
        ended.push((pid, status));
    }
    // ANCHOR_END: reap
    let mut matched = 0;
    for (pid, status) in ended {
        let Some(index) = kids.iter().position(|k| k.0 == pid) else {
            continue;
        };
        let (_, fate, forked_ns) = kids[index];
        let expected = fate.expected(pid);
        let (first, lead_us) = who_first(forked_ns, started[index]);
        let gone = !procfacts::exists(pid.as_raw());
        observe!(
            lab,
            "reaped",
            "waitpid(-1): {pid} {status}; child {index} was given {fate}; the \
             {first} ran first after fork (by {lead_us} µs)",
            pid = pid.as_raw(),
            index,
            fate = fate.to_string(),
            status,
            expected,
            matches = status == expected,
            gone,
            first,
            lead_us
        );
        matched += (status == expected && gone) as usize;
    }
    let child_first = kids
        .iter()
        .zip(&started)
        .filter(|((_, _, forked), &s)| s > 0 && s < *forked)
        .count();
    observe!(
        lab,
        "first_summary",
        "the child ran before the parent resumed in {child_first} of {n} forks; it \
         varies from run to run",
        child_first,
        forks = n
    );
    let signaled =
        kids.iter().filter(|k| k.1.expected(k.0).signal().is_some()).count();
    check!(
        lab,
        "every_status_decoded",
        matched == n,
        "{matched} of {n} children reaped with the status they were given \
         ({signaled} of them killed by a signal), and gone from /proc",
        matched,
        n,
        signaled
    );
    drop(hold_tx);
}

/// waitpid(-1) failed (ECHILD): the kernel kept no status, as when SIGCHLD is
/// ignored (a disposition that exec inherits). The children are gone: forget them.
fn no_status_kept(lab: &mut Lab, kids: &[(Pid, Fate, u64)], status: Status) -> ! {
    kids.iter().for_each(|k| cleanup::forget(k.0));
    let why = format!("{status}: the kernel kept no status (SIGCHLD ignored?)");
    lab.not_observed("every_status_decoded", why)
}
