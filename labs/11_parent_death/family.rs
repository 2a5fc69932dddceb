//! A family: the observer forks a parent, which forks the children. Each member writes
//! (role, pid) on a pipe once it is ready, so the observer never guesses with a sleep,
//! and holds a lifeline to the observer: a family never outlives the lab.

use crate::Args;
use nix::errno::Errno;
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::unistd::{fork, getpid, pipe, write, ForkResult, Pid};
use proclab::_exit;
use proclab::lifeline::{die_with_parent, Lifeline};
use proclab::{cleanup, die, fdio, flush_stdout, procfacts, say_as};
use proclab::{Deadline, Lab, OrDie};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// Who a member of the family is: way 2 has a late child (its prctl comes after its
/// parent died), way 3 a leaver (it moved to a process group of its own).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    Parent,
    Child,
    Late,
    Leaver,
}

impl Role {
    pub fn name(self) -> &'static str {
        ["parent", "child", "late child", "leaver"][self as usize]
    }
}

/// How a way's family is made. Each function runs in a forked member (async-signal-safe
/// calls only) and never returns: it ends by a signal or `_exit`. Then what it inherits.
pub struct Recipe {
    pub name: &'static str,
    /// The switch a test sets to remove this way's phenomenon (`proclab::test_removes`).
    pub switch: &'static str,
    /// In the parent, before it forks its children (a process group, a pipe).
    pub parent_setup: fn(&mut Member),
    /// One child's life.
    pub child: Life,
    /// One more member, if the way has one (the late child, the leaver).
    pub extra: Option<(Role, Life)>,
}

/// A member's life after fork.
pub type Life = fn(&Member) -> !;

pub struct Member<'a> {
    /// The family's parent (in the parent: itself).
    pub parent: Pid,
    /// True when a test removed the phenomenon (read before the fork).
    pub removed: bool,
    /// The observer's "go on" (way 2's late child): one byte, or end of file.
    pub go: &'a OwnedFd,
    /// Ends when the observer does: members sleep on it, never in pause().
    pub lifeline: &'a Lifeline,
    /// A pipe the parent made for its children (way 4).
    pub pipe: Option<(OwnedFd, OwnedFd)>,
    ready: &'a OwnedFd,
}

impl Member<'_> {
    /// Tell the observer "I am ready": one 8-byte write, atomic on a pipe.
    pub fn ready(&self, role: Role) {
        let mut rec = [0u8; 8];
        rec[..4].copy_from_slice(&(role as i32).to_ne_bytes());
        rec[4..].copy_from_slice(&getpid().as_raw().to_ne_bytes());
        if write(self.ready, &rec) != Ok(rec.len()) {
            _exit(1)
        }
    }
}

/// A family as the observer knows it.
pub struct Family {
    pub parent: Pid,
    pub children: Vec<Pid>,
    /// The late child or the leaver.
    pub extra: Option<Pid>,
    /// The observer's end of the "go on" pipe (way 2's late child).
    pub go: OwnedFd,
}

/// Fork the parent of `recipe`, collect the family's reports (each pid tracked for
/// cleanup as soon as it is known), show it, and wait `--hold-ms`.
pub fn start(
    lab: &mut Lab,
    recipe: &Recipe,
    args: &Args,
    lifeline: &Lifeline,
) -> Family {
    let removed = proclab::test_removes(recipe.switch); // tests only
    let (go_r, go) = pipe().or_die("pipe");
    let observer = getpid();
    // ANCHOR: family
    let (ready_r, ready_w) = pipe().or_die("pipe"); // members write (role, pid)
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&stop_signals()), None)
        .or_die("sigprocmask"); // a Ctrl-C waits until every pid is tracked
    flush_stdout();
    // SAFETY: parent() only makes async-signal-safe calls and never returns.
    let parent = match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            die_with_parent(observer.as_raw()); // SIGKILL if the observer dies
            lifeline.hold(); // only the observer keeps the write end
            drop(go); // and only it can say "go on"
            let (go, ready, pipe, me) = (&go_r, &ready_w, None, getpid());
            let mut m = Member { parent: me, removed, go, lifeline, pipe, ready };
            parent(recipe, args.children as usize, &mut m)
        }
        ForkResult::Parent { child } => child,
    };
    cleanup::track(parent); // first, so the cleanup kills it before its children
    drop((ready_w, go_r)); // only the family holds these ends
    let (children, extra) = collect(&ready_r, recipe, args.children as usize);
    // Every member is tracked: a pending Ctrl-C is delivered now, and reaches all.
    sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&stop_signals()), None)
        .or_die("sigprocmask");
    // ANCHOR_END: family
    let fam = Family { parent, children, extra, go };
    show(lab, recipe, &fam);
    std::thread::sleep(Duration::from_millis(args.hold_ms)); // so a person can look
    fam
}

/// Read the reports until the parent and every other member has reported.
fn collect(ready: &OwnedFd, recipe: &Recipe, n: usize) -> (Vec<Pid>, Option<Pid>) {
    let deadline = Deadline::after(Duration::from_secs(10));
    let (mut children, mut extra, mut parent_done) = (Vec::new(), None, false);
    let want_extra = recipe.extra.is_some();
    // ANCHOR: collect
    while !parent_done || children.len() < n || (want_extra && extra.is_none()) {
        let mut rec = [0u8; 8];
        match fdio::read_full_by(ready, &mut rec, deadline) {
            Ok(8) => {}
            Ok(_) => {
                die("the family's reports (a member died first)", Errno::EPIPE)
            }
            Err(e) => die("the family's reports (10 s)", e),
        }
        let pid =
            Pid::from_raw(i32::from_ne_bytes([rec[4], rec[5], rec[6], rec[7]]));
        match rec[0] {
            0 => parent_done = true, // it has forked them all
            1 => children.push(pid),
            _ => extra = Some(pid),
        }
        if rec[0] != 0 {
            cleanup::track(pid); // a grandchild: the cleanup must reach it too
        }
    }
    // ANCHOR_END: collect
    children.sort(); // in fork order (the reports arrive as the scheduler chose)
    (children, extra)
}

/// The family table (role, pid, ppid, pgrp, state, wait channel) once every member has
/// settled in its wait.
fn show(lab: &mut Lab, recipe: &Recipe, fam: &Family) {
    let mut members = vec![(Role::Parent, fam.parent)];
    members.extend(fam.children.iter().map(|&c| (Role::Child, c)));
    members.extend(recipe.extra.map(|(r, _)| r).zip(fam.extra));
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|&(role, pid)| {
            let pid = pid.as_raw();
            let state =
                procfacts::wait_for_state(pid, &['S'], Duration::from_secs(2));
            let wchan = procfacts::poll_until(Duration::from_secs(1), || {
                procfacts::wchan(pid)
            });
            let f = procfacts::facts(pid);
            vec![
                role.name().to_string(),
                pid.to_string(),
                f.as_ref().map_or("?".into(), |f| f.ppid.to_string()),
                f.as_ref().map_or("?".into(), |f| f.pgrp.to_string()),
                state.map_or("?".into(), |s| s.to_string()),
                wchan.unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let headers = ["role", "pid", "ppid", "pgrp", "state", "waits in"];
    lab.table("family", &headers, &rows);
    let n = fam.children.len();
    let extra = match (recipe.extra, fam.extra) {
        (Some((role, _)), Some(p)) => format!(", 1 {} ({p})", role.name()),
        _ => String::new(),
    };
    say_as!(
        "observer",
        "{}'s family is up: 1 parent, {n} children{extra}",
        recipe.name
    );
}

// ANCHOR: parent
/// The parent (the "master"): sets up what its way needs, forks the children,
/// reports, and waits to be killed. It never waits for its children: the
/// observer collects their statuses.
fn parent(recipe: &Recipe, n: usize, m: &mut Member) -> ! {
    unblock_stop_signals();
    (recipe.parent_setup)(m);
    for _ in 0..n {
        // SAFETY: the child makes async-signal-safe calls only; never returns.
        if let ForkResult::Child = unsafe { fork() }.or_die("fork") {
            (recipe.child)(m);
        }
    }
    if let Some((_, life)) = recipe.extra {
        // SAFETY: as above.
        if let ForkResult::Child = unsafe { fork() }.or_die("fork") {
            life(m);
        }
    }
    say_as!("parent", "forked my children; now waiting to be killed");
    m.ready(Role::Parent);
    m.lifeline.wait_then_exit() // sleeps until a signal, or the observer's end
}
// ANCHOR_END: parent

/// SIGINT and SIGTERM, the signals the lab's cleanup handler answers.
fn stop_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set
}

/// In the family: the default SIGINT/SIGTERM actions (the lab's cleanup handler is the
/// observer's business), unblocked (the observer blocked them while it learned the pids).
fn unblock_stop_signals() {
    // SAFETY: signal is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
    }
    sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&stop_signals()), None)
        .or_die("sigprocmask");
}

/// In a member: close its copy of a descriptor it must not hold.
pub fn close_copy(fd: &OwnedFd) {
    // SAFETY: close is async-signal-safe; the OwnedFd is never used or dropped after
    // this, since this process leaves with _exit.
    unsafe { libc::close(fd.as_raw_fd()) };
}

/// A recipe's `parent_setup` when the way needs none.
pub fn nothing(_: &mut Member) {}
