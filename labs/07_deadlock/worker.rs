//! The worker: this same program re-executed with `--role`, so that its threads may
//! deadlock in a process the lab can kill. The lab's side (spawn, read its messages) and
//! the worker's side (which role runs, and only as the child of a lab that watches it).

use crate::wire::{self, Done, Msg};
use crate::{coffman, detector, philosophers, threads, Args};
use clap::ValueEnum;
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{getpid, getppid, pipe2, ForkResult, Pid};
use proclab::measure::fmt_duration;
use proclab::{
    _exit, cleanup, flush_stdout, lifeline, observe, Lab, OrDie, Status, Watchdog,
};
use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// What a worker does: one deadlock (a ring of threads on std's mutex, or on
/// parking_lot's for its detector) or one fix, with threads.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    Pair,
    Philosophers,
    PairParkingLot,
    PhilosophersParkingLot,
    FixOrder,
    FixLockstep,
    FixJitter,
    FixTimed,
    FixOneLock,
    FixPhilosophers,
}

impl Role {
    /// Its name on the command line and in the JSON: `fix-order`.
    pub fn name(self) -> String {
        let v = self.to_possible_value().expect("a role has a name");
        v.get_name().to_string()
    }

    /// What a fix does, for a person.
    pub fn title(self) -> &'static str {
        match self {
            Role::FixOrder => "global order A then B",
            Role::FixLockstep => "try_lock + release in lockstep",
            Role::FixJitter => "try_lock + release, random back-off",
            Role::FixTimed => "timed lock gives up",
            Role::FixOneLock => "one lock for both",
            Role::FixPhilosophers => "lower-numbered fork first",
            _ => "a ring of threads",
        }
    }

    /// The test switch that takes this fix away (`proclab::test_removes`).
    pub fn removal_switch(self) -> Option<&'static str> {
        match self {
            Role::FixOrder => Some("opposite_orders"),
            Role::FixJitter => Some("lock_instead_of_try_lock"),
            Role::FixTimed => Some("lock_without_timeout"),
            Role::FixOneLock => Some("two_locks_instead_of_one"),
            Role::FixPhilosophers => Some("left_fork_first"),
            _ => None,
        }
    }
}

/// Names the lab's pid in a worker's environment: a worker runs only as its child.
const STARTED_BY: &str = "PROCLAB_DEADLOCK_LAB";

/// In the worker: run `role`. A ring never returns (the lab kills it); a fix exits 0.
pub fn run(role: Role, args: &Args) -> ! {
    // A worker deadlocks on purpose and has no watchdog of its own: only a lab that
    // watches it (its parent, named in STARTED_BY) may start one.
    let lab = std::env::var(STARTED_BY).ok().and_then(|v| v.parse().ok());
    if lab != Some(getppid().as_raw()) {
        eprintln!("error: --role is internal: a worker runs only under the lab that started it (run `deadlock` without --role)");
        std::process::exit(proclab::EXIT_USAGE);
    }
    let (n, k) = (args.philosophers as usize, args.iters as u64);
    let names = |p: &str| (0..n).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
    let strings = |s: [&str; 2]| s.map(String::from).to_vec();
    let (ts, locks) = match role {
        Role::Pair | Role::PairParkingLot => {
            (strings(["t1", "t2"]), strings(["A", "B"]))
        }
        _ => (names("phil"), names("fork")),
    };
    match role {
        Role::Pair | Role::Philosophers => {
            threads::ring::<std::sync::Mutex<()>>(&ts, &locks);
            threads::park_forever() // the lab looks at it from outside, then kills it
        }
        Role::PairParkingLot | Role::PhilosophersParkingLot => {
            detector::ask(threads::ring::<parking_lot::Mutex<()>>(&ts, &locks))
        }
        Role::FixPhilosophers => philosophers::fix(n, k),
        fix => coffman::work(fix, k),
    }
    std::process::exit(0)
}

/// The lab's side of a worker: its pid and its stdout (a pipe to us).
pub struct Worker {
    pub pid: Pid,
    lines: BufReader<std::fs::File>,
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
}

/// This program's path, the argv of a worker with `role` and its environment (ours, and
/// the lab's pid in STARTED_BY), built before any fork.
fn argv(role: Role, args: &Args) -> [Vec<CString>; 3] {
    let c = |b: Vec<u8>| CString::new(b).expect("no NUL");
    let exe = std::env::current_exe().or_die("current_exe");
    let exe = vec![c(exe.into_os_string().into_encoded_bytes())];
    let (n, k) = (args.philosophers.to_string(), args.iters.to_string());
    let role = role.name();
    let argv =
        ["deadlock-worker", "--role", &role, "--philosophers", &n, "--iters", &k];
    let argv = argv.iter().map(|a| c(a.as_bytes().to_vec())).collect();
    let ours = std::env::vars_os().filter(|(k, _)| k != STARTED_BY);
    let mut env: Vec<CString> = ours
        .map(
            |(k, v)| c([k.as_encoded_bytes(), b"=", v.as_encoded_bytes()].concat()),
        )
        .collect();
    env.push(c(format!("{STARTED_BY}={}", getpid()).into_bytes()));
    [exe, argv, env]
}

/// Start a worker with `role`.
pub fn spawn(role: Role, args: &Args) -> Worker {
    // Built before the fork: after it, the child must not allocate.
    let [exe, argv, env] = argv(role, args);
    // ANCHOR: spawn
    let lab = getpid().as_raw();
    let (rd, wr) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // its stdout, to us
    flush_stdout();
    // SAFETY: the child only calls prctl, getppid, dup2, execve and _exit, all
    // async-signal-safe; argv and env were built before the fork.
    match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            // Even a SIGKILLed lab takes it along (PR_SET_PDEATHSIG).
            lifeline::die_with_parent(lab);
            // SAFETY: as above.
            unsafe { libc::dup2(wr.as_raw_fd(), 1) }; // its messages go to us
            let _ = nix::unistd::execve(&exe[0], &argv, &env); // a fresh process
            _exit(127)
        }
        ForkResult::Parent { child } => {
            drop(wr); // only the worker writes: its death is end of file
            let lines = BufReader::new(std::fs::File::from(rd));
            Worker { pid: child, lines }
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
        "{title}: {how}",
        title = role.title(),
        role = role.name(),
        finished = report.is_some(),
        watchdog_fired = fired,
        status,
        report
    );
    report
}
