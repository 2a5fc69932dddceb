//! # orphan: the parent dies first
//!
//! A process whose parent exits keeps running: it is an orphan, and the kernel gives it a
//! new parent at once, so that someone will reap it when it ends. The new parent is the
//! nearest ancestor that declared itself a "child subreaper" with
//! `prctl(PR_SET_CHILD_SUBREAPER)`, or else PID 1 of the PID namespace. The lab builds
//! lab -> parent -> child, lets the parent exit, and the child watches `getppid()` change
//! and reads the new parent's name from `/proc/PPID/comm`. Case A: the lab is not a
//! subreaper, the kernel picks the adopter (this machine's answer is reported, whatever it
//! is). Case B: the lab makes itself a subreaper first, so the orphan is adopted by the lab,
//! which then reaps it with `waitpid`.
//!
//! What to look for: the ppid before and after; who adopted the orphan (PID 1 is not always
//! an init: here it may be a container's or a VM's agent); in case B the lab as the new
//! parent, in the tree and in the wait status it collects.
//!
//! Caveats: the orphan ends by itself within a few seconds (`--linger`). In case A its
//! zombie belongs to the adopter: if that process never reaps, the zombie stays until it
//! does; the lab reports what it saw (case B shows the cure, and `--skip-plain` runs only
//! case B where PID 1 is known not to reap).

use clap::Parser;
use nix::sys::prctl;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, getppid, pipe2, read, write, ForkResult, Pid};
use proclab::lifeline::{die_with_parent, Lifeline};
use proclab::narrate::StackBuf;
use proclab::{
    cleanup, fdio, flush_stdout, procfacts, say, say_as, Common, Deadline, Lab,
    OrDie, Status,
};
use serde_json::json;
use std::fmt::Write as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// orphan: a child outlives its parent and is adopted by PID 1 or the nearest subreaper.
#[derive(Parser)]
#[command(name = "orphan", version)]
struct Args {
    /// How long the orphan lives after reporting its adoption, in ms (0 to 10000); it
    /// then exits by itself.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(i32).range(0..=10_000))]
    linger_ms: i32,
    /// Skip case A, where the orphan's adopter is not the lab's to control (use this where
    /// PID 1 does not reap: the orphan's zombie would stay until it does).
    #[arg(long)]
    skip_plain: bool,
    #[command(flatten)]
    common: Common,
}

/// The exit status the orphan leaves with, so that its reaper can be seen collecting it.
const ORPHAN_STATUS: i32 = 42;
/// How long the orphan watches getppid() for a change once its parent was told to exit.
const ADOPTION_MS: i32 = 2000;

/// One report from the orphan: its pid, what getppid() said, and that parent's comm.
#[derive(Clone, Debug, Default)]
struct Report {
    pid: i32,
    ppid: i32,
    comm: String,
}

/// In the orphan: read /proc/PPID/comm into `out` with open/read/close only (async-signal-safe).
fn comm_of(ppid: i32, out: &mut [u8; 16]) {
    let mut path = StackBuf::new();
    let _ = write!(path, "/proc/{ppid}/comm\0");
    // SAFETY: path is NUL-terminated; open/read/close are async-signal-safe.
    unsafe {
        let fd = libc::open(
            path.as_bytes().as_ptr().cast(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd >= 0 {
            let n = libc::read(fd, out.as_mut_ptr().cast(), out.len());
            if n > 0 && out[n as usize - 1] == b'\n' {
                out[n as usize - 1] = 0;
            }
            libc::close(fd);
        }
    }
}

/// In the orphan: send (pid, ppid, comm of ppid) to the lab in one write (< PIPE_BUF).
fn send_report(fd: &OwnedFd, ppid: i32) {
    let mut rec = [0u8; 24];
    // SAFETY: getpid has no preconditions.
    rec[..4].copy_from_slice(&unsafe { libc::getpid() }.to_ne_bytes());
    rec[4..8].copy_from_slice(&ppid.to_ne_bytes());
    let mut comm = [0u8; 16];
    comm_of(ppid, &mut comm);
    rec[8..].copy_from_slice(&comm);
    let _ = write(fd, &rec);
}

/// In the lab: the next report, or None at EOF (the orphan has ended) or after 5 s.
fn next_report(fd: &OwnedFd) -> Option<Report> {
    let mut rec = [0u8; 24];
    let by = Deadline::after(Duration::from_secs(5));
    match fdio::read_full_by(fd, &mut rec, by) {
        Ok(24) => {}
        Ok(_) | Err(nix::errno::Errno::ETIMEDOUT) => return None,
        Err(e) => proclab::die("read", e),
    }
    let int = |r: &[u8]| i32::from_ne_bytes([r[0], r[1], r[2], r[3]]);
    let comm = &rec[8..];
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    Some(Report {
        pid: int(&rec[..4]),
        ppid: int(&rec[4..8]),
        comm: String::from_utf8_lossy(&comm[..end]).into_owned(),
    })
}

/// In the lab: wait (bounded) for `pid`, its child, to end, and reap it.
fn reap_by(pid: Pid, timeout: Duration) -> Status {
    let wait = || match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => None,
        ended => Some(ended),
    };
    let status = Status(procfacts::poll_until(timeout, wait).unwrap_or(Ok(WaitStatus::StillAlive)));
    if status.0 != Ok(WaitStatus::StillAlive) {
        cleanup::forget(pid); // reaped, or not ours (ECHILD): never kill that pid again
    }
    status
}

/// The orphan-to-be's inheritance: where it reports, the lab's "go", its lifeline.
struct Pipes<'a> {
    reports: &'a OwnedFd,
    go: &'a OwnedFd,
    lifeline: &'a Lifeline,
}

// ANCHOR: orphan_child
/// In the orphan-to-be: report the parent; once the lab says go, watch getppid() (bounded)
/// until it changes; report the adopter; live on a little; end by itself.
fn be_orphan(parent: Pid, p: &Pipes, linger_ms: i32) -> ! {
    send_report(p.reports, getppid().as_raw()); // "my parent is <parent>"
    if read(p.go, &mut [0u8; 1]) != Ok(1) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(1) } // end of file: the lab is gone
    }
    let mut waited = 0;
    while getppid() == parent && waited < ADOPTION_MS {
        if p.lifeline.sleep_ms(1) {
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(1) } // the lab is gone: so do we
        }
        waited += 1;
    }
    let adopter = getppid(); // who the kernel gave us to
    send_report(p.reports, adopter.as_raw()); // with /proc/ADOPTER/comm
    say_as!("orphan", "my parent was {parent}; getppid() now says {adopter}");
    p.lifeline.sleep_ms(linger_ms); // live on a little (less if the lab dies)
    // SAFETY: _exit leaves at once, without running the lab's destructors.
    unsafe { libc::_exit(ORPHAN_STATUS) }
}
// ANCHOR_END: orphan_child

/// The pids above the lab, up to PID 1 (where an orphan of ours may be sent).
fn ancestors(of: i32) -> Vec<i32> {
    let mut chain = Vec::new();
    let mut pid = of;
    while let Some(p) = procfacts::ppid(pid).filter(|&p| p > 0) {
        chain.push(p);
        pid = p;
    }
    chain
}

/// What one case produced.
struct Outcome {
    middle: Pid,
    orphan: Pid,
    before: Report,
    /// The orphan's second report: None if it sent none.
    after: Option<Report>,
    ppid_from_proc: Option<i32>,
    reports: OwnedFd,
}

/// lab -> parent -> orphan; the parent exits; returns what the orphan reported.
fn make_orphan(lab: &mut Lab, lifeline: &Lifeline, linger_ms: i32) -> Outcome {
    let me = getpid();
    let middle_reaps = proclab::test_removes("middle_reaps"); // tests only: no orphan
    // ANCHOR: orphan
    let (rep_rx, rep_tx) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).or_die("pipe2"); // orphan -> lab
    let (go_rx, go_tx) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).or_die("pipe2"); // lab -> both: go
    flush_stdout();
    // SAFETY: parent and orphan only call fork, read, write, open, poll, say! and _exit.
    let middle = match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            die_with_parent(me.as_raw()); // the lab's SIGKILL takes the parent along
            lifeline.hold(); // only the lab holds the write end: EOF when it dies
            // SAFETY: closes this process's copy of the write end, so EOF if the lab dies.
            unsafe { libc::close(go_tx.as_raw_fd()) };
            let parent = getpid();
            let pipes = Pipes { reports: &rep_tx, go: &go_rx, lifeline };
            // SAFETY: as above: the orphan only calls async-signal-safe functions.
            match unsafe { fork() }.or_die("fork") {
                ForkResult::Child => be_orphan(parent, &pipes, linger_ms),
                ForkResult::Parent { child } => {
                    say!("forked {child}; I will exit without waiting for it");
                    let _ = read(&go_rx, &mut [0u8; 1]); // until the lab has looked
                    if middle_reaps {
                        let _ = waitpid(child, None); // the test's change: no orphan
                    }
                }
            }
            // SAFETY: the parent leaves at once; its child becomes an orphan.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => child,
    };
    // ANCHOR_END: orphan
    cleanup::track(middle);
    drop(rep_tx); // only the orphan holds the write end now: EOF when it has ended
    let Some(before) = next_report(&rep_rx) else {
        // The parent could not fork (it printed the error): nothing to observe.
        proclab::die("read (the child's first report)", nix::errno::Errno::EPIPE)
    };
    let orphan = Pid::from_raw(before.pid);
    cleanup::track(orphan); // killed on every way out (reaped too, once it is ours)
    lab.observe(
        "before",
        json!({"orphan": before.pid, "parent": middle.as_raw(), "ppid": before.ppid,
               "ppid_from_proc": procfacts::ppid(before.pid)}),
        format_args!(
            "the child {} says getppid() = {}; /proc/{}/stat agrees: ppid {}",
            before.pid,
            before.ppid,
            before.pid,
            procfacts::ppid(before.pid).unwrap_or(0)
        ),
    );
    lab.show_tree(me);
    // ANCHOR: exit
    write(&go_tx, b"xx").or_die("write"); // one byte each: parent, exit; child, watch
    let bound = Duration::from_millis((ADOPTION_MS + linger_ms) as u64 + 5000);
    let status = reap_by(middle, bound); // the parent is gone (and reaped)
    let after = next_report(&rep_rx); // the orphan's new getppid()
    let ppid_from_proc = procfacts::ppid(before.pid); // the kernel's view, from outside
    // ANCHOR_END: exit
    let pid = middle.as_raw();
    proclab::observe!(
        lab,
        "parent_exited",
        "the parent {pid}: waitpid says {status}",
        pid,
        status
    );
    Outcome { middle, orphan, before, after, ppid_from_proc, reports: rep_rx }
}

/// The check's text: what became of the orphan's parent, as observed.
fn parent_change(old: i32, new: Option<i32>, who: &str) -> String {
    match new {
        None => "the orphan sent no report after its parent was told to exit".into(),
        Some(new) if new == old => {
            format!("the orphan's getppid() still says {old}: it was not re-parented")
        }
        Some(new) => format!("the orphan's parent changed from {old} to {new}, {who}"),
    }
}

/// Case A: the lab is an ordinary process; the kernel picks the orphan's adopter.
fn plain_case(lab: &mut Lab, above: &[i32], lifeline: &Lifeline, linger_ms: i32) {
    let me = getpid();
    let a = make_orphan(lab, lifeline, linger_ms);
    let old = a.before.ppid;
    let new = a.after.as_ref().map(|r| r.ppid);
    let adopter = new.unwrap_or(0);
    let adopter_comm = procfacts::comm(adopter)
        .or_else(|| a.after.as_ref().map(|r| r.comm.clone()))
        .unwrap_or_default();
    let who = match adopter {
        1 => "PID 1",
        p if above.contains(&p) => "a subreaper above the lab",
        p if p == me.as_raw() => "the lab",
        p if p == a.middle.as_raw() => "the same parent",
        _ => "neither PID 1 nor an ancestor of the lab",
    };
    lab.observe(
        "adopted",
        json!({"case": "plain", "orphan": a.orphan.as_raw(), "old_ppid": old,
               "new_ppid": new, "ppid_from_proc": a.ppid_from_proc,
               "adopter_comm": adopter_comm, "adopter_is_pid1": adopter == 1,
               "adopter_is_ancestor": above.contains(&adopter), "adopter_is_lab": adopter == me.as_raw()}),
        format_args!(
            "getppid() went from {old} to {adopter} ({adopter_comm:?}, {who}); /proc/{}/stat says ppid {}",
            a.orphan,
            a.ppid_from_proc.unwrap_or(0)
        ),
    );
    lab.show_tree(me);
    lab.check(
        "plain_orphan_adopted",
        old == a.middle.as_raw()
            && new.is_some_and(|p| p != old && p > 0)
            && a.ppid_from_proc == new
            && (adopter == 1 || above.contains(&adopter)),
        parent_change(old, new, &format!("{who}: the kernel's pick")),
    );
    // ANCHOR: plain_end
    // The orphan is not our child any more: its end and its reaping belong to the adopter.
    let by = Deadline::after(Duration::from_millis(linger_ms as u64 + 5000));
    let ended = fdio::read_full_by(&a.reports, &mut [0u8; 1], by) == Ok(0); // EOF: it exited
    let sw = Instant::now();
    let mut states = String::new();
    let reaped = procfacts::poll_until(Duration::from_secs(5), || {
        match procfacts::state(a.orphan.as_raw()) {
            Some(s) => {
                if !states.ends_with(s) {
                    states.push(s); // e.g. Z: exited, waiting for the adopter to reap it
                }
                None
            }
            None => Some(sw.elapsed()), // gone from /proc: the adopter reaped it
        }
    });
    // ANCHOR_END: plain_end
    cleanup::forget(a.orphan);
    lab.observe(
        "plain_end",
        json!({"orphan": a.orphan.as_raw(), "ended": ended, "states_seen": states,
               "reaped_by_adopter": reaped.is_some(),
               "reaped_after_ms": reaped.map(|d| d.as_millis() as u64), "adopter": adopter}),
        match reaped {
            Some(d) => format!(
                "the orphan ended by itself; {adopter_comm} ({adopter}) reaped it {} ms later (states seen: [{states}])",
                d.as_millis()
            ),
            None => format!(
                "the orphan ended by itself, but {adopter_comm} ({adopter}) has not reaped it within 5 s: it stays a zombie until {adopter} waits"
            ),
        },
    );
    lab.check(
        "plain_orphan_ended",
        ended && procfacts::state(a.orphan.as_raw()).is_none_or(|s| s == 'Z'),
        "the orphan ended by itself (its report pipe closed; it is gone or a zombie of its adopter)",
    );
}

fn main() {
    let args = Args::parse();
    let mut lab = Lab::start(
        "orphan",
        "when a parent exits first its child lives on and is re-parented: to PID 1 or the nearest child subreaper; with PR_SET_CHILD_SUBREAPER the grandparent adopts it deterministically and reaps it",
        &args.common,
    );
    let me = getpid();
    let lifeline = Lifeline::new().or_die("pipe2"); // the orphans end if the lab dies
    lab.section("A. The parent exits; the kernel picks the adopter");
    let above = ancestors(me.as_raw());
    let pid1 = procfacts::comm(1).unwrap_or_else(|| "?".into());
    lab.observe(
        "machine",
        json!({"pid1_comm": pid1, "lab_pid": me.as_raw(), "ancestors": above}),
        format_args!("PID 1 here is {pid1:?}; the lab's ancestors: {above:?}"),
    );

    if args.skip_plain {
        say!("case A skipped (--skip-plain): no orphan is left to an adopter the lab does not control");
    } else {
        plain_case(&mut lab, &above, &lifeline, args.linger_ms);
    }

    lab.section("B. The lab is a child subreaper: it adopts and reaps the orphan");
    // ANCHOR: subreaper
    prctl::set_child_subreaper(true).or_die("prctl(PR_SET_CHILD_SUBREAPER)"); // orphans below us come to us

    // ANCHOR_END: subreaper
    let b = make_orphan(&mut lab, &lifeline, args.linger_ms);
    let old = b.before.ppid;
    let new = b.after.as_ref().map(|r| r.ppid);
    let adopter = new.unwrap_or(0);
    let comm = b.after.as_ref().map(|r| r.comm.clone()).unwrap_or_default();
    lab.observe(
        "adopted",
        json!({"case": "subreaper", "orphan": b.orphan.as_raw(), "old_ppid": old,
               "new_ppid": new, "ppid_from_proc": b.ppid_from_proc,
               "adopter_comm": comm, "adopter_is_pid1": adopter == 1,
               "adopter_is_ancestor": above.contains(&adopter), "adopter_is_lab": adopter == me.as_raw()}),
        format_args!(
            "getppid() went from {old} to {adopter} ({comm:?}){}; /proc/{}/stat says ppid {}",
            if adopter == me.as_raw() { ": the lab" } else { "" },
            b.orphan,
            b.ppid_from_proc.unwrap_or(0)
        ),
    );
    lab.show_tree(me);
    lab.check(
        "subreaper_adopted",
        old == b.middle.as_raw() && new == Some(me.as_raw()) && b.ppid_from_proc == Some(me.as_raw()),
        parent_change(old, new, &format!("the lab ({me}), by PR_SET_CHILD_SUBREAPER")),
    );
    // ANCHOR: reap
    let bound = Duration::from_millis(args.linger_ms as u64 + 5000);
    let status = reap_by(b.orphan, bound); // our child now: we reap it (ECHILD if not)
    let gone = !procfacts::exists(b.orphan.as_raw());
    // ANCHOR_END: reap
    lab.observe(
        "subreaper_reaped",
        json!({"orphan": b.orphan.as_raw(), "status": status, "code": status.code(),
               "expected": ORPHAN_STATUS, "gone": gone}),
        format_args!(
            "the lab's waitpid({}): {status}; /proc/{} {}",
            b.orphan,
            b.orphan,
            if gone { "is gone" } else { "still exists" }
        ),
    );
    lab.check(
        "subreaper_reaped",
        status.code() == Some(ORPHAN_STATUS) && gone,
        if status.code() == Some(ORPHAN_STATUS) {
            format!("the orphan ended by itself with status {ORPHAN_STATUS} and the subreaper lab reaped it: nothing left behind")
        } else {
            format!("the lab could not collect the orphan's status {ORPHAN_STATUS}: {status}")
        },
    );

    lab.finish()
}
