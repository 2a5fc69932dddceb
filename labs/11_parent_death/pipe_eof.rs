//! Section 4, a pipe only the parent writes: the parent makes it before forking,
//! each child closes its copy of the write end and blocks in read. Nothing is ever
//! written: when the parent dies, for whatever reason, the kernel closes its last
//! write end and every read returns 0. Before the kill the observer sees each child
//! blocked in read(2) on that pipe (/proc/PID/syscall and /proc/PID/fd).

use crate::family::{self, Member, Recipe, Role};
use crate::fate;
use crate::summary::Way;
use crate::Args;
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal, Signal::SIGKILL};
use nix::unistd::{getppid, pipe, read, Pid};
use proclab::_exit;
use proclab::lifeline::Lifeline;
use proclab::{check, observe, procfacts, say_as, Lab, OrDie};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

/// Tests only (`child_closes_read_end`): the children close the read end and watch
/// getppid instead. They still exit 0 when the parent dies, but read no EOF.
static NEVER_READS: AtomicBool = AtomicBool::new(false);

const RECIPE: Recipe = Recipe {
    name: "pipe",
    switch: "writer_kept",
    parent_setup,
    child,
    extra: None,
};

/// In the parent, before it forks: the pipe. The children keep the read end; only the
/// parent keeps the write end.
fn parent_setup(m: &mut Member) {
    m.pipe = Some(pipe().or_die("pipe"));
}

// ANCHOR: eof
fn child(m: &Member) -> ! {
    let (r, w) = m.pipe.as_ref().expect("the parent's pipe");
    if !m.removed {
        family::close_copy(w); // a child holding a write end: no EOF, ever
    }
    if NEVER_READS.load(Relaxed) {
        never_reads(m, r)
    }
    m.ready(Role::Child);
    // read() returns 0 once the parent, the last writer, is gone.
    while matches!(read(r, &mut [0u8; 1]), Ok(1) | Err(Errno::EINTR)) {}
    let ppid = getppid();
    say_as!(
        "child",
        "EOF on the pipe: my parent is gone or going (getppid: {ppid})"
    );
    _exit(0) // ends on its own, with status 0
}
// ANCHOR_END: eof

/// The switch `child_closes_read_end`: no read, a poll on getppid instead.
fn never_reads(m: &Member, r: &std::os::fd::OwnedFd) -> ! {
    family::close_copy(r);
    m.ready(Role::Child);
    while getppid() == m.parent {
        if m.lifeline.sleep_ms(1) {
            _exit(1) // the observer is gone
        }
    }
    _exit(0)
}

// ANCHOR: blocked
/// If `pid` is blocked in read(2) on a pipe that `parent` writes: the fd
/// and the pipe. /proc/PID/syscall says `0 0x3 ...` (read, fd 3, on
/// x86-64), /proc/PID/fd/3 `pipe:[INODE]`, and the parent holds that pipe.
fn blocked_reading(pid: Pid, parent: Pid) -> Option<(i32, String)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    let mut words = s.split_whitespace();
    if words.next()?.parse::<i64>().ok()? != libc::SYS_read {
        return None; // not in a system call, or in another one
    }
    let fd =
        i32::from_str_radix(words.next()?.trim_start_matches("0x"), 16).ok()?;
    let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    let pipe = link.display().to_string();
    let ours = pipe.starts_with("pipe:") && writes_to(parent, &pipe);
    ours.then_some((fd, pipe))
}
// ANCHOR_END: blocked

/// True if `pid` holds `pipe` open for writing (/proc/PID/fd, and the access mode in
/// the `flags:` line of /proc/PID/fdinfo, in octal).
fn writes_to(pid: Pid, pipe: &str) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|e| {
        let link = std::fs::read_link(e.path());
        if !link.is_ok_and(|l| l.to_str() == Some(pipe)) {
            return false; // another file
        }
        let info =
            format!("/proc/{pid}/fdinfo/{}", e.file_name().to_string_lossy());
        let flags = std::fs::read_to_string(info).unwrap_or_default();
        let mode = flags.lines().find_map(|l| l.strip_prefix("flags:"));
        let mode = mode.and_then(|f| u32::from_str_radix(f.trim(), 8).ok());
        mode.is_some_and(|f| f & libc::O_ACCMODE as u32 == libc::O_WRONLY as u32)
    })
}

pub fn run(lab: &mut Lab, args: &Args, lifeline: &Lifeline) -> Way {
    lab.section("4. A pipe only the parent writes: EOF when it dies");
    NEVER_READS.store(proclab::test_removes("child_closes_read_end"), Relaxed);
    let fam = family::start(lab, &RECIPE, args, lifeline);
    let mut blocked = 0;
    for &c in &fam.children {
        // Bounded: a child that never reads never gets there.
        let seen = procfacts::poll_until(Duration::from_secs(2), || {
            blocked_reading(c, fam.parent)
        });
        let what = match &seen {
            Some((fd, pipe)) => format!("blocked in read(fd {fd}) on {pipe}"),
            None => "not blocked reading its parent's pipe within 2 s".into(),
        };
        let wchan = procfacts::wchan(c.as_raw()).unwrap_or_else(|| "-".into());
        observe!(
            lab,
            "pipe_blocked",
            "child {pid} is {what} (wchan {wchan})",
            pid = c.as_raw(),
            what,
            wchan,
            fd = seen.as_ref().map(|s| s.0),
            pipe = seen.as_ref().map(|s| s.1.clone()),
            in_read = seen.is_some()
        );
        blocked += seen.is_some() as usize;
    }
    let n = fam.children.len();
    let reading = check!(
        lab,
        "pipe_children_blocked",
        blocked == n,
        "before the kill, {blocked} of {n} children were blocked reading the pipe \
         their parent writes",
        blocked,
        n
    );
    kill(fam.parent, Signal::SIGKILL).or_die("kill"); // the same kill -9 as in 1
    let parent_end = fate::reap_parent(lab, RECIPE.name, &[fam.parent], SIGKILL);
    let fates = fate::await_deaths(&fam.children);
    fate::observe(lab, RECIPE.name, "child", fam.parent, &fam.children, &fates);
    let exited = fates.iter().filter(|f| f.exit_code() == Some(0)).count();
    let held = check!(
        lab,
        "pipe_children_exit",
        parent_end.signal() == Some(Signal::SIGKILL) && exited == n,
        "the parent died of SIGKILL and {exited} of {n} children read EOF on the \
         pipe and exited 0 by themselves"
    );
    Way {
        name: "4 pipe EOF",
        parent_death: "SIGKILL to the parent",
        children: fate::tally(&fates),
        died_with_it: exited == n,
        held: held && reading,
        lesson: "children watching a pipe only the parent writes exit on its EOF",
    }
}
