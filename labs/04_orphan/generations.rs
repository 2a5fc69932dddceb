//! The three generations both cases run: lab -> parent -> child. The parent exits
//! without waiting for its child, which becomes an orphan and reports who adopted it.

use crate::wire::{next_report, send_report};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, getpid, getppid, pipe2, read, write, ForkResult, Pid};
use proclab::_exit;
use proclab::lifeline::{die_with_parent, Lifeline};
use proclab::{cleanup, flush_stdout, observe, procfacts, say, say_as};
use proclab::{Lab, OrDie, Status};
use std::os::fd::OwnedFd;
use std::time::Duration;

/// The exit status the orphan leaves with, so that its reaper can be seen collecting it.
pub const ORPHAN_STATUS: i32 = 42;
/// How long the orphan watches getppid() once its parent was told to exit, in ms.
const ADOPTION_MS: i32 = 2000;

/// What one run of the three generations produced.
pub struct Orphan {
    /// The parent that exited.
    pub parent: Pid,
    pub pid: Pid,
    /// What getppid() said before, and after the parent exited (None: no report).
    pub old_ppid: i32,
    pub new_ppid: Option<i32>,
    /// The ppid in /proc/PID/stat after: the kernel's view, from outside.
    pub ppid_from_proc: Option<i32>,
    /// Who the new parent is: "PID 1", "the lab", ...
    pub who: &'static str,
    pub adopter_comm: String,
    /// The read end of the orphan's reports: end of file once it has ended.
    pub reports: OwnedFd,
}

/// What the orphan-to-be inherits: where it reports, the lab's go, its lifeline.
struct Pipes<'a> {
    reports: &'a OwnedFd,
    go: &'a OwnedFd,
    lifeline: &'a Lifeline,
}

// ANCHOR: orphan_child
/// In the orphan-to-be: report the parent; once the lab says go, watch
/// getppid() (bounded) until it changes; report the adopter; live on a little.
fn be_orphan(parent: Pid, p: &Pipes, linger_ms: i32) -> ! {
    send_report(p.reports, getppid().as_raw()); // "my parent is <parent>"
    let go = read(p.go, &mut [0u8; 1]) == Ok(1); // end of file: the lab is gone
    let mut waited = 0;
    while go && getppid() == parent && waited < ADOPTION_MS {
        if p.lifeline.sleep_ms(1) {
            break; // the lab is gone
        }
        waited += 1;
    }
    let adopter = getppid(); // who the kernel gave us to
    send_report(p.reports, adopter.as_raw()); // with /proc/ADOPTER/comm
    say_as!("orphan", "my parent was {parent}; getppid() now says {adopter}");
    // Live on a little (less if the lab is gone), then end by itself.
    p.lifeline.sleep_ms(linger_ms);
    // _exit leaves at once, without running the lab's destructors.
    _exit(ORPHAN_STATUS)
}
// ANCHOR_END: orphan_child

/// lab -> parent -> orphan; the parent exits; what the orphan reported, as observed.
pub fn make_orphan(
    lab: &mut Lab,
    case: &str,
    above: &[i32],
    lifeline: &Lifeline,
    linger_ms: i32,
) -> Orphan {
    let me = getpid();
    let middle_reaps = proclab::test_removes("middle_reaps"); // tests only
    let (rep_rx, rep_tx) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // orphan -> lab
    let (go_rx, go_tx) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // lab -> both
    flush_stdout();
    // ANCHOR: orphan
    // SAFETY: both only call fork, read, write, open, poll, say! and _exit.
    let parent = match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            die_with_parent(me.as_raw()); // SIGKILL when the lab dies
            lifeline.hold(); // only the lab holds its write end
            drop(go_tx); // only the lab can say go: end of file if it dies
            let parent = getpid();
            let pipes = Pipes { reports: &rep_tx, go: &go_rx, lifeline };
            // SAFETY: as above.
            match unsafe { fork() }.or_die("fork") {
                ForkResult::Child => be_orphan(parent, &pipes, linger_ms),
                ForkResult::Parent { child } => {
                    say!("forked {child}; I will exit without waiting for it");
                    let _ = read(&go_rx, &mut [0u8; 1]); // until the lab has looked
                    if middle_reaps {
                        let _ = waitpid(child, None); // waits: no orphan
                    }
                }
            }
            // the parent leaves at once; its child becomes an orphan.
            _exit(0)
        }
        ForkResult::Parent { child } => child,
    };
    // ANCHOR_END: orphan
    cleanup::track(parent);
    drop(rep_tx); // only the family holds write ends now: EOF when they have ended
    let Some(before) = next_report(&rep_rx) else {
        // The parent could not fork (it printed the error): nothing to observe.
        proclab::die("read (the child's first report)", Errno::EPIPE)
    };
    let (pid, ppid) = (before.pid, before.ppid);
    cleanup::track(Pid::from_raw(pid)); // killed on every way out (and reaped, if ours)
    let ppid_from_proc = procfacts::ppid(pid);
    let seen = ppid_from_proc.map_or("?".into(), |p| p.to_string());
    observe!(
        lab,
        "before",
        "the child {pid} says getppid() = {ppid}; /proc/{pid}/stat says ppid {seen}",
        orphan = pid,
        forked = true,
        parent = parent.as_raw(),
        ppid,
        ppid_from_proc
    );
    lab.show_tree(me);
    let bound = Duration::from_millis((ADOPTION_MS + linger_ms) as u64 + 5000);
    // ANCHOR: exit
    write(&go_tx, b"xx").or_die("write"); // a byte each: parent, exit; child, watch
    let status = reap_by(parent, bound); // the parent is gone, and reaped
    let after = next_report(&rep_rx); // the orphan's new getppid()
    let ppid_from_proc = procfacts::ppid(pid); // the kernel's view, from outside
    observe!(
        lab,
        "parent_exited",
        "the parent {pid}: waitpid says {status}",
        pid = parent.as_raw(),
        status
    );
    // ANCHOR_END: exit
    let new_ppid = after.as_ref().map(|r| r.ppid);
    let adopter = new_ppid.unwrap_or(0);
    let who = match adopter {
        0 => "nobody known",
        1 => "PID 1",
        p if p == me.as_raw() => "the lab",
        p if p == parent.as_raw() => "the same parent",
        p if above.contains(&p) => "a subreaper above the lab",
        _ => "neither PID 1 nor an ancestor of the lab",
    };
    let went = match new_ppid {
        None => "the orphan sent no second report".to_string(),
        Some(p) if p == ppid => format!("getppid() still says {ppid}"),
        Some(p) => format!("getppid() went from {ppid} to {p}"),
    };
    let comm = procfacts::comm(adopter).or(after.map(|r| r.comm));
    let adopter_comm = comm.unwrap_or_default();
    let name = if adopter_comm.is_empty() { "?" } else { &adopter_comm };
    let seen = ppid_from_proc.map_or("?".into(), |p| p.to_string());
    observe!(
        lab,
        "adopted",
        "{went} ({name}, {who}); /proc/{pid}/stat says ppid {seen}",
        case,
        orphan = pid,
        old_ppid = ppid,
        new_ppid,
        ppid_from_proc,
        adopter_comm,
        adopter_is_pid1 = adopter == 1,
        adopter_is_ancestor = above.contains(&adopter),
        adopter_is_lab = adopter == me.as_raw()
    );
    lab.show_tree(me);
    Orphan {
        parent,
        pid: Pid::from_raw(pid),
        old_ppid: ppid,
        new_ppid,
        ppid_from_proc,
        who,
        adopter_comm: adopter_comm.clone(),
        reports: rep_rx,
    }
}

impl Orphan {
    /// What became of the orphan's parent, as observed: the text of a check.
    pub fn change(&self) -> String {
        let old = self.old_ppid;
        match self.new_ppid {
            None => {
                "the orphan sent no report once its parent was told to exit".into()
            }
            Some(p) if p == old => {
                format!("the orphan's getppid() still says {old}: not re-parented")
            }
            Some(p) => {
                format!(
                    "the orphan's parent changed from {old} to {p}, {}",
                    self.who
                )
            }
        }
    }
}

/// Wait (bounded, in lab time) for `pid`, a child of the lab, to end, and reap it.
/// `ECHILD` when it is not the lab's child: an answer, not an error. "Still running"
/// (WNOHANG's answer) at the deadline.
pub fn reap_by(pid: Pid, timeout: Duration) -> Status {
    proclab::wait::reap_by(pid, timeout)
        .unwrap_or(Status(Ok(WaitStatus::StillAlive)))
}
