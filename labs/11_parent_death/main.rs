//! # parent-death: does killing the parent kill its children?
//!
//! Tutorials about Node's cluster say "if we kill the parent process, all the children die
//! automatically". This lab tests that, four ways. For each, the lab (the *observer*) forks a
//! *parent*, which forks the *children* and reports their pids through a pipe. The observer
//! kills the parent and watches what becomes of the children, from /proc and from the wait
//! statuses it collects: the observer made itself a *subreaper* (`PR_SET_CHILD_SUBREAPER`),
//! so the orphans are re-parented to it and it can reap them and decode how they ended.
//!
//! 1. plain fork, parent killed with SIGKILL: the children live on, with a new ppid;
//! 2. `PR_SET_PDEATHSIG(SIGTERM)`: the kernel sends each child SIGTERM when its parent dies
//!    (a "late" child shows the race between fork and prctl, caught by re-checking getppid);
//! 3. process group: `kill(-pgid, SIGTERM)` reaches every member at once, as Ctrl-C does in a
//!    terminal; a child that left the group is not touched;
//! 4. a pipe whose write end only the parent holds: the children read EOF when it dies and
//!    exit by themselves.
//!
//! What to look for: in 1, the orphans' ppid turns into the observer's pid and they stay in
//! state S; in 2 and 3 the wait status says "killed by SIGTERM"; in 4 it says "exited 0".
//!
//! Caveats: without a subreaper the orphans go to PID 1, which in a container may not be an
//! init that reaps (on the machine that recorded the book, PID 1 is `process_api`). Every
//! process of the family holds a lifeline to the observer (a pipe), so nothing outlives a
//! lab that was itself killed with SIGKILL.

// The plumbing lives beside this file: the command line, the family's readiness reports,
// and how the observer prints what it saw (observations, tables, the summary).
mod args;
mod observations;
mod readiness;

use args::{Args, Scenario};
use clap::Parser;
use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::{kill, killpg, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{
    fork, getpid, getppid, pipe, read, setpgid, write, ForkResult, Pid,
};
use observations::{
    observe_children, observe_cleaned, observe_fate, observe_parent,
    observe_subreaper, show_family, Fate, Summary,
};
use proclab::lifeline::{self, Lifeline};
use proclab::procfacts;
use proclab::{cleanup, die, flush_stdout, say_as, Deadline, Lab, OrDie};
use readiness::{next_report, report, Role};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// Exit status of a child whose getppid re-check found its parent already gone.
const PARENT_GONE: i32 = 4;
/// Generous bound for anything the observer waits for (a report, a death).
const TIMEOUT: Duration = Duration::from_secs(10);

fn main() {
    let args = Args::parse();
    let mut lab = Lab::start(
        "parent-death",
        "killing the parent does not by itself kill its children: they live on as orphans unless PR_SET_PDEATHSIG, a process-group signal or a pipe's end of file ends them",
        &args.common,
    );
    let me = getpid();
    let n = args.children as usize;
    let linger = Duration::from_millis(args.linger_ms);
    let hold = Duration::from_millis(args.hold_ms);
    // Every process of a family ends when the observer does, even by SIGKILL.
    let lifeline = Lifeline::new().or_die("pipe2");
    let runs = |s: Scenario| args.scenario == Scenario::All || args.scenario == s;
    let mut summary = Summary::new(me);

    lab.section("0. The observer becomes a subreaper");
    // ANCHOR: subreaper
    // From now on, orphans below us are re-parented to us, not to PID 1. Then ask the kernel back.
    prctl::set_child_subreaper(true).or_die("prctl(PR_SET_CHILD_SUBREAPER)");
    let subreaper =
        prctl::get_child_subreaper().or_die("prctl(PR_GET_CHILD_SUBREAPER)");
    // ANCHOR_END: subreaper
    observe_subreaper(&mut lab, me, subreaper);
    lab.check(
        "subreaper_set",
        subreaper,
        "the kernel reports the observer as a subreaper: every orphan of this run is re-parented to it",
    );

    if runs(Scenario::Plain) {
        lab.section("1. Plain fork: kill -9 the parent");
        let fam = start_family(&mut lab, Scenario::Plain, n, hold, &lifeline);
        lab.show_tree(me);
        // ANCHOR: kill_plain
        kill(fam.parent, Signal::SIGKILL).or_die("kill"); // `kill -9 <master>`
        let parent_end = reap(fam.parent); // the observer is the parent's parent: waitpid says how it died
        observe_parent(&mut lab, Scenario::Plain, fam.parent, parent_end);
        std::thread::sleep(linger); // time for the children to die, if they were going to

        // Alive or dead? Whose child now?
        let fates: Vec<Fate> = fam.children.iter().map(|&c| look(c)).collect();
        // ANCHOR_END: kill_plain
        observe_children(
            &mut lab,
            Scenario::Plain,
            fam.parent,
            &fam.children,
            &fates,
        );
        lab.show_tree(me);
        // Survived: still running, with a new parent (the observer, unless the subreaper is gone).
        let alive =
            fates.iter().filter(|f| f.alive_with_new_parent(fam.parent)).count();
        let under_me = fates.iter().filter(|f| f.alive_under(me)).count();
        let held = lab.check(
            "plain_children_survive",
            killed_by(parent_end, Signal::SIGKILL) && alive == n,
            format_args!(
                "the parent died of SIGKILL and {alive} of {n} children were still alive {} ms later, with a new parent ({under_me} of them the observer): killing the parent did NOT kill them",
                args.linger_ms
            ),
        );
        let cleaned = fam
            .children
            .iter()
            .filter(|&&c| end_survivor(&mut lab, Scenario::Plain, c))
            .count();
        lab.check(
            "plain_orphans_cleaned",
            cleaned == n,
            format_args!("{cleaned} of {n} orphans ended by the observer's SIGTERM and reaped: they would have lived on otherwise"),
        );
        summary.add(
            "1 plain fork",
            "SIGKILL to the parent",
            &fates,
            alive == 0,
            held,
            "with a plain fork, killing the parent leaves its children running as orphans",
        );
    }

    if runs(Scenario::Pdeathsig) {
        lab.section("2. PR_SET_PDEATHSIG: a signal when the parent dies");
        let fam = start_family(&mut lab, Scenario::Pdeathsig, n, hold, &lifeline);
        kill(fam.parent, Signal::SIGKILL).or_die("kill"); // the same kill -9 as in 1
        let parent_end = reap(fam.parent);
        write(&fam.go, b"g").or_die("write"); // the late child may go on: its parent is reaped, so it was re-parented
        let fates: Vec<Fate> =
            fam.children.iter().map(|&c| await_death(c)).collect(); // bounded
        let (late, late_fate) =
            fam.extra.map(|(_, p)| (p, await_death(p))).expect("a late child");
        observe_parent(&mut lab, Scenario::Pdeathsig, fam.parent, parent_end);
        observe_children(
            &mut lab,
            Scenario::Pdeathsig,
            fam.parent,
            &fam.children,
            &fates,
        );
        observe_fate(
            &mut lab,
            Scenario::Pdeathsig,
            Role::Late,
            late,
            fam.parent,
            &late_fate,
        );
        let died =
            fates.iter().filter(|f| f.signal() == Some(Signal::SIGTERM)).count();
        let held = lab.check(
            "pdeathsig_children_die",
            killed_by(parent_end, Signal::SIGKILL) && died == n,
            format_args!("the parent died of SIGKILL and {died} of {n} children were killed by SIGTERM, the signal they asked for with PR_SET_PDEATHSIG"),
        );
        lab.check(
            "pdeathsig_race_caught",
            late_fate.exit_code() == Some(PARENT_GONE),
            format_args!(
                "the late child, whose prctl came after its parent's death, got no signal; its getppid re-check saw the change and it exited with status {PARENT_GONE}"
            ),
        );
        end_survivor(&mut lab, Scenario::Pdeathsig, late); // only if the re-check failed
        summary.add(
            "2 PR_SET_PDEATHSIG",
            "SIGKILL to the parent",
            &fates,
            died == n,
            held,
            "with PR_SET_PDEATHSIG they are signalled when it dies (re-check getppid after prctl)",
        );
    }

    if runs(Scenario::Pgroup) {
        lab.section("3. Process group: signal the whole group, as Ctrl-C does");
        let fam = start_family(&mut lab, Scenario::Pgroup, n, hold, &lifeline);
        let leaver = fam.extra.map(|(_, p)| p).expect("a leaver");
        // ANCHOR: killpg
        // The parent leads the group and its children inherited it at fork: one
        // kill(-pgid, SIGTERM) reaches every member at once.
        let pgid = fam.parent;
        if let Err(e) = killpg(pgid, Signal::SIGTERM) {
            // ESRCH: no group has that id, so no group signal reached anyone.
            lab.not_observed("pgroup_members_die", format_args!("killpg({pgid}): {e}"));
        }
        // ANCHOR_END: killpg
        let parent_end = reap(fam.parent);
        let fates: Vec<Fate> =
            fam.children.iter().map(|&c| await_death(c)).collect();
        std::thread::sleep(linger); // the leaver had time to die too, if the signal had reached it
        let leaver_fate = look(leaver);
        observe_parent(&mut lab, Scenario::Pgroup, fam.parent, parent_end);
        observe_children(
            &mut lab,
            Scenario::Pgroup,
            fam.parent,
            &fam.children,
            &fates,
        );
        observe_fate(
            &mut lab,
            Scenario::Pgroup,
            Role::Leaver,
            leaver,
            fam.parent,
            &leaver_fate,
        );
        let died =
            fates.iter().filter(|f| f.signal() == Some(Signal::SIGTERM)).count();
        let held = lab.check(
            "pgroup_members_die",
            killed_by(parent_end, Signal::SIGTERM) && died == n,
            format_args!(
                "one kill(-{pgid}, SIGTERM) killed the parent and {died} of {n} children, all members of group {pgid}"
            ),
        );
        let left_alive = leaver_fate.alive_under(me)
            && leaver_fate.pgrp() != Some(pgid.as_raw());
        lab.check(
            "pgroup_leaver_survives",
            left_alive,
            "the child that had moved to a group of its own was not signalled: it lives on, re-parented to the observer",
        );
        end_survivor(&mut lab, Scenario::Pgroup, leaver);
        summary.add(
            "3 process group",
            "SIGTERM to the group",
            &fates,
            died == n,
            held,
            "a signal to the process group reaches them, but only the members",
        );
    }

    if runs(Scenario::Pipe) {
        lab.section("4. A pipe only the parent writes: EOF when it dies");
        let fam = start_family(&mut lab, Scenario::Pipe, n, hold, &lifeline);
        kill(fam.parent, Signal::SIGKILL).or_die("kill"); // the same kill -9 as in 1
        let parent_end = reap(fam.parent);
        let fates: Vec<Fate> =
            fam.children.iter().map(|&c| await_death(c)).collect();
        observe_parent(&mut lab, Scenario::Pipe, fam.parent, parent_end);
        observe_children(
            &mut lab,
            Scenario::Pipe,
            fam.parent,
            &fam.children,
            &fates,
        );
        let exited = fates.iter().filter(|f| f.exit_code() == Some(0)).count();
        let held = lab.check(
            "pipe_children_exit",
            killed_by(parent_end, Signal::SIGKILL) && exited == n,
            format_args!("the parent died of SIGKILL and {exited} of {n} children read EOF on the pipe and exited 0 by themselves"),
        );
        summary.add(
            "4 pipe EOF",
            "SIGKILL to the parent",
            &fates,
            exited == n,
            held,
            "children watching a pipe only the parent writes exit on its EOF",
        );
    }

    lab.section("Summary: did the children die with their parent?");
    summary.show(&mut lab);
    summary.report(&mut lab);
    lab.finish()
}

/// A parent and the children it reported.
struct Family {
    parent: Pid,
    children: Vec<Pid>,
    /// The late child (scenario 2) or the leaver (scenario 3).
    extra: Option<(Role, Pid)>,
    /// The write end of the late child's "go on" pipe (scenario 2).
    go: OwnedFd,
}

/// Fork the parent of `scenario`, collect the reports of the whole family (each pid is
/// tracked for cleanup as soon as it is known), and show it.
fn start_family(
    lab: &mut Lab,
    scenario: Scenario,
    n: usize,
    hold: Duration,
    lifeline: &Lifeline,
) -> Family {
    // Scenario 2: the observer tells the late child when to go on.
    let (go_r, go) = pipe().or_die("pipe");
    let deadline = Deadline::after(TIMEOUT);
    // ANCHOR: family
    let (ready_r, ready_w) = pipe().or_die("pipe"); // each member writes (role, pid) here when ready
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&stop_signals()), None)
        .or_die("sigprocmask"); // Ctrl-C waits until all are tracked
    let observer = getpid();
    flush_stdout();
    // SAFETY: parent() only makes async-signal-safe calls and never returns (it ends by a signal or _exit).
    let parent = match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            lifeline::die_with_parent(observer.as_raw()); // the observer's SIGKILL takes it
            lifeline.hold(); // only the observer keeps the write end
            close_raw(&go); // and the observer's "go on" to the late child
            parent(scenario, n, &ready_w, &go_r, lifeline)
        }
        ForkResult::Parent { child } => child,
    };
    cleanup::track(parent); // tracked first, so the cleanup kills it before its children
    drop((ready_w, go_r)); // only the family holds these ends
    let (mut children, mut extra, mut parent_done) = (Vec::new(), None, false);
    while !parent_done
        || children.len() < n
        || (needs_extra(scenario) && extra.is_none())
    {
        let (role, pid) = next_report(&ready_r, deadline); // blocks (bounded) until someone is ready
        if role == Role::Parent {
            parent_done = true; // it has forked them all
            continue;
        }
        cleanup::track(pid); // a grandchild: the cleanup must reach it too
        match role {
            Role::Child => children.push(pid),
            other => extra = Some((other, pid)),
        }
    }
    // Every member is tracked: a pending Ctrl-C is delivered now, and the cleanup reaches all.
    sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&stop_signals()), None)
        .or_die("sigprocmask");
    // ANCHOR_END: family
    children.sort(); // in fork order (the reports arrive in the order the scheduler chose)
    let fam = Family { parent, children, extra, go };
    show_family(lab, scenario, fam.parent, &fam.children, fam.extra);
    std::thread::sleep(hold); // only so a person can look: `ps -o pid,ppid,pgid,stat,cmd --forest`
    fam
}

/// Scenarios 2 and 3 have one more member: the late child, the leaver.
fn needs_extra(scenario: Scenario) -> bool {
    matches!(scenario, Scenario::Pdeathsig | Scenario::Pgroup)
}

// ---------------------------------------------------------------------------------------
// The family. Everything below runs in forked processes: async-signal-safe calls only (raw
// syscalls, say_as!, no allocation), and every path ends by a signal or `_exit`.

/// Restore the default SIGINT/SIGTERM actions (the lab's cleanup handler is the observer's
/// business).
fn child_defaults() {
    // SAFETY: signal is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL); // a signal kills, as it would in any program
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
    }
    // Inherited from the observer, which blocks them while it learns the family's pids.
    sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&stop_signals()), None)
        .or_die("sigprocmask");
}

/// SIGINT and SIGTERM, the signals the lab's cleanup handler answers.
fn stop_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set
}


/// Read one byte from `fd`, again after EINTR: 1 if a byte came, 0 at EOF (no writer left).
fn read_byte(fd: &OwnedFd) -> usize {
    let mut byte = [0u8; 1];
    loop {
        match read(fd, &mut byte) {
            Ok(k) => return k,
            Err(Errno::EINTR) => {}
            Err(e) => die("read", e),
        }
    }
}

/// Block until one byte arrives on `fd`; leave if the pipe reads EOF instead (the observer is gone).
fn wait_for_byte(fd: &OwnedFd) {
    if read_byte(fd) == 0 {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(1) }
    }
}

/// Block until `fd` reads EOF: every write end of its pipe is closed.
fn block_until_eof(fd: &OwnedFd) {
    while read_byte(fd) != 0 {} // EOF: no process holds the write end any more
}

/// Close a copy of a descriptor this process must not hold.
fn close_raw(fd: &OwnedFd) {
    // SAFETY: close is async-signal-safe; the OwnedFd is never used or dropped after this,
    // since this process leaves with _exit.
    unsafe { libc::close(fd.as_raw_fd()) };
}

/// The parent (the "master"): forks the children, reports, and waits to be killed.
fn parent(
    scenario: Scenario,
    n: usize,
    ready: &OwnedFd,
    go: &OwnedFd,
    lifeline: &Lifeline,
) -> ! {
    child_defaults();
    let me = getpid();
    // ANCHOR: parent
    if scenario == Scenario::Pgroup {
        setpgid(me, me).or_die("setpgid"); // a new process group, led by the parent: children forked after join it
    }
    let pipe_ends = if scenario == Scenario::Pipe {
        Some(pipe().or_die("pipe")) // the children keep the read end; only the parent keeps the write end
    } else {
        None
    };
    for _ in 0..n {
        // SAFETY: child() only makes async-signal-safe calls and never returns.
        if let ForkResult::Child = unsafe { fork() }.or_die("fork") {
            child(scenario, me, ready, pipe_ends.as_ref(), lifeline);
        }
    }
    // ANCHOR_END: parent
    if needs_extra(scenario) {
        // SAFETY: late_child() and leaver() only make async-signal-safe calls and never return.
        if let ForkResult::Child = unsafe { fork() }.or_die("fork") {
            match scenario {
                Scenario::Pdeathsig => late_child(me, ready, go, lifeline),
                _ => leaver(ready, lifeline),
            }
        }
    }
    say_as!("parent", "forked my children; now waiting to be killed");
    report(ready, Role::Parent);
    lifeline.wait_then_exit() // never waits for its children: the observer collects their statuses
}

/// One child: how it learns of its parent's death depends on the scenario.
fn child(
    scenario: Scenario,
    parent: Pid,
    ready: &OwnedFd,
    pipe_ends: Option<&(OwnedFd, OwnedFd)>,
    lifeline: &Lifeline,
) -> ! {
    child_defaults();
    match (scenario, pipe_ends) {
        // ANCHOR: eof
        (Scenario::Pipe, Some((r, w))) => {
            close_raw(w); // a child holding a write end would keep the pipe open: no EOF, ever
            report(ready, Role::Child);
            block_until_eof(r); // read() returns 0 once the parent, the last writer, is gone
            say_as!(
                "child",
                "EOF on the pipe: my parent is gone or going (getppid says {}), exiting",
                getppid()
            );
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(0) } // ends on its own, with status 0
        }
        // ANCHOR_END: eof
        (Scenario::Pdeathsig, _) => {
            sigterm_when_parent_dies(parent);
            report(ready, Role::Child);
            lifeline.wait_then_exit() // sleeps until a signal, or the observer's end
        }
        _ => {
            report(ready, Role::Child); // plain and pgroup: nothing special, just a running child
            lifeline.wait_then_exit() // not pause(): the observer's end ends it too
        }
    }
}

// ANCHOR: pdeathsig
/// Ask the kernel for SIGTERM when the parent dies. If it died between our fork and this
/// call, we were already re-parented and no signal will ever come: leave now.
fn sigterm_when_parent_dies(parent: Pid) {
    prctl::set_pdeathsig(Signal::SIGTERM).or_die("prctl(PR_SET_PDEATHSIG)"); // armed from now on, not retroactively
    if getppid() != parent {
        say_as!(
            "child",
            "my parent {parent} is already gone (ppid is {}): exiting",
            getppid()
        );
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(PARENT_GONE) }
    }
}
// ANCHOR_END: pdeathsig

// ANCHOR: race
/// Scenario 2's late child: as if preempted between fork and prctl until its parent died.
fn late_child(parent: Pid, ready: &OwnedFd, go: &OwnedFd, lifeline: &Lifeline) -> ! {
    child_defaults();
    report(ready, Role::Late);
    // Stands in for "descheduled right after fork": the observer says go only once it has
    // reaped our parent, so we have surely been re-parented before we call prctl.
    wait_for_byte(go);
    sigterm_when_parent_dies(parent); // as the other children: only its re-check saves us
    lifeline.wait_then_exit() // reached only without the re-check: only the observer's end ends it
}
// ANCHOR_END: race

/// Scenario 3's leaver: moves to a process group of its own, as a daemon (or `setsid`) does.
fn leaver(ready: &OwnedFd, lifeline: &Lifeline) -> ! {
    child_defaults();
    // ANCHOR: leaver
    let me = getpid();
    // Leave the parent's group: a signal to that group will miss this process.
    setpgid(me, me).or_die("setpgid");
    // ANCHOR_END: leaver
    report(ready, Role::Leaver);
    lifeline.wait_then_exit()
}

// ---------------------------------------------------------------------------------------
// The observer's side: how it reads the fate of a process.

// ANCHOR: look
/// Dead or alive? A dead child of ours (re-parented to us, the subreaper) is reaped and its
/// wait status says how it ended; a live one is described by /proc.
fn look(pid: Pid) -> Fate {
    // WNOHANG: reap it if it has ended, return at once if not.
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => {}
        Ok(status) => {
            cleanup::forget(pid); // reaped: the pid may be reused, never kill it again
            return Fate::Dead(status);
        }
        Err(e) => die("waitpid", e),
    }
    match procfacts::facts(pid.as_raw()) {
        Some(f) if f.state != 'Z' => {
            Fate::Alive { ppid: f.ppid, state: f.state, pgrp: f.pgrp }
        }
        _ => Fate::Gone, // gone, or a zombie of another parent: not ours to reap
    }
}
// ANCHOR_END: look

/// Wait (bounded) until `pid` is no longer alive.
fn await_death(pid: Pid) -> Fate {
    procfacts::poll_until(TIMEOUT, || match look(pid) {
        Fate::Alive { .. } => None,
        end => Some(end),
    })
    .unwrap_or_else(|| look(pid))
}

/// Reap the parent the observer has just signalled (bounded).
fn reap(parent: Pid) -> Option<WaitStatus> {
    match await_death(parent) {
        Fate::Dead(status) => Some(status),
        _ => None,
    }
}

fn killed_by(status: Option<WaitStatus>, sig: Signal) -> bool {
    matches!(status, Some(WaitStatus::Signaled(_, s, _)) if s == sig)
}

/// End a survivor with SIGTERM and reap it; true if it was alive and died of that SIGTERM.
fn end_survivor(lab: &mut Lab, scenario: Scenario, pid: Pid) -> bool {
    if !matches!(look(pid), Fate::Alive { .. }) {
        return false; // already ended and reaped
    }
    kill(pid, Signal::SIGTERM).or_die("kill"); // the observer cleans up what the folklore says would die
    let end = await_death(pid);
    observe_cleaned(lab, scenario, pid, &end);
    end.signal() == Some(Signal::SIGTERM)
}
