//! The worker: this same program re-executed with `--role`, so that its threads may
//! deadlock in a process the lab can kill. The lab's side (spawn, read its messages) and
//! the worker's side (which role runs).

use crate::wire::{self, Done, Msg};
use crate::{coffman, philosophers, threads, Args};
use clap::ValueEnum;
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{getpid, pipe2, ForkResult, Pid};
use proclab::measure::fmt_duration;
use proclab::{
    cleanup, flush_stdout, lifeline, observe, Lab, OrDie, Status, Watchdog,
};
use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// What a worker does: one deadlock or one fix, with threads.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
pub enum Role {
    Pair,
    Philosophers,
    FixOrder,
    FixLockstep,
    FixJitter,
    FixTimed,
    FixOneLock,
    FixPhilosophers,
}

/// In the worker: run `role`. A ring never returns (the lab kills it); a fix exits 0.
pub fn run(role: Role, args: &Args) -> ! {
    let (n, k) = (args.philosophers as usize, args.iters as u64);
    let names = |p: &str| (0..n).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
    match role {
        Role::Pair => threads::ring(
            &["t1", "t2"].map(String::from),
            &["A", "B"].map(String::from),
        ),
        Role::Philosophers => threads::ring(&names("phil"), &names("fork")),
        Role::FixPhilosophers => philosophers::fix(n, k),
        fix => coffman::work(fix, k),
    }
    std::process::exit(0)
}

/// The lab's side of a worker: its pid, its stdout (a pipe to us), its stdin (from us).
pub struct Worker {
    pub pid: Pid,
    lines: BufReader<std::fs::File>,
    stdin: std::fs::File,
}

impl Worker {
    /// The next message, or None at end of file (the worker died: nothing else writes
    /// into the pipe). The lab's watchdog kills a worker that stays silent.
    pub fn next(&mut self) -> Option<Msg> {
        let mut line = String::new();
        loop {
            line.clear();
            match self.lines.read_line(&mut line) {
                Ok(n) if n > 0 => match wire::parse(&line) {
                    Some(m) => return Some(m),
                    None => continue, // not a message (a panic's text): skip it
                },
                _ => return None,
            }
        }
    }

    /// Tell the worker to go on (one line on its stdin).
    pub fn go(&mut self) {
        let _ = self.stdin.write_all(b"go\n");
    }
}

/// This program's path and the argv of a worker with `role`, built before any fork.
fn argv(role: Role, args: &Args) -> (CString, Vec<CString>) {
    let exe = std::env::current_exe().or_die("current_exe");
    let exe = CString::new(exe.into_os_string().into_encoded_bytes());
    let role = role.to_possible_value().expect("a role has a name");
    let (n, k) = (args.philosophers.to_string(), args.iters.to_string());
    let argv = [
        "deadlock-worker",
        "--role",
        role.get_name(),
        "--philosophers",
        &n,
        "--iters",
        &k,
    ];
    let argv = argv.iter().map(|a| CString::new(*a).expect("no NUL")).collect();
    (exe.expect("no NUL"), argv)
}

/// Start a worker with `role`.
pub fn spawn(role: Role, args: &Args) -> Worker {
    // Built before the fork: after it, the child must not allocate.
    let (exe, argv) = argv(role, args);
    // ANCHOR: spawn
    let lab = getpid().as_raw();
    let (rd, wr) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // its stdout, to us
    let (in_r, in_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // its stdin
    flush_stdout();
    // SAFETY: the child only calls prctl, getppid, dup2, execv and _exit, all
    // async-signal-safe; argv was built before the fork.
    match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            // Even a SIGKILLed lab takes it along (PR_SET_PDEATHSIG).
            lifeline::die_with_parent(lab);
            // SAFETY: as above.
            unsafe {
                libc::dup2(wr.as_raw_fd(), 1); // its messages go into the pipe
                libc::dup2(in_r.as_raw_fd(), 0); // and it reads "go" from us
                let _ = nix::unistd::execv(&exe, &argv); // a fresh process
                libc::_exit(127)
            }
        }
        ForkResult::Parent { child } => {
            drop((wr, in_r)); // only the worker writes: its death is end of file
            let lines = BufReader::new(std::fs::File::from(rd));
            Worker { pid: child, lines, stdin: std::fs::File::from(in_w) }
        }
    }
    // ANCHOR_END: spawn
}

/// Run a fix in a worker to its end, under a watchdog that kills it at the deadline, and
/// observe how it ended: its report if it finished.
pub fn finish(lab: &mut Lab, role: Role, args: &Args) -> Option<Done> {
    let mut w = spawn(role, args);
    let pid = w.pid;
    let dog = Watchdog::arm(args.deadline(), move || {
        let _ = kill(pid, Signal::SIGKILL); // a fix that does not finish is no fix
    });
    let mut report = None;
    while let Some(m) = w.next() {
        if let Msg::Done(d) = m {
            report = Some(d);
        }
    }
    let status = Status(waitpid(pid, None)); // bounded: the watchdog is still armed
    let fired = dog.disarm();
    cleanup::forget(pid);
    let report = report.filter(|_| !fired && status.code() == Some(0));
    let how = match &report {
        Some(d) => {
            let t = fmt_duration(Duration::from_micros(d.elapsed_us));
            format!("finished in {t}; {}", d.summary)
        }
        None if fired => format!("did NOT finish by the deadline: {status}"),
        None => format!("did NOT finish: {status}"),
    };
    observe!(
        lab,
        "fix",
        "{role}: {how}",
        role = format!("{role:?}"),
        finished = report.is_some(),
        watchdog_fired = fired,
        status,
        report
    );
    report
}
