//! # deadlock: make it, see it, break it, prevent it
//!
//! A deadlock is a cycle of waiters: each holds something the next one needs and waits for
//! something the previous one holds. This lab makes four of them *for certain* (a barrier
//! lets every side take its first resource before any asks for its second), detects each
//! within `--deadline MS` (default 2000), prints the cycle, breaks it, and then runs the
//! fixes, timed, to completion:
//!
//! 1. `threads`: two threads, two mutexes, opposite order. The threads run in a worker
//!    process (the lab re-executes itself) that records a wait-for graph and asks
//!    parking_lot's deadlock detector; the lab reads the threads' state and kernel wait
//!    channel from /proc, then breaks the deadlock by killing the worker. Then the four
//!    Coffman fixes: a global lock order, try_lock with back-off (and its livelock risk),
//!    a timed lock that gives up, one lock for both.
//! 2. `processes`: two processes, two `flock` locks: both in state S, the cycle read from
//!    /proc/locks; broken by killing one. With `fcntl` record locks the kernel sees the
//!    cycle itself and answers `EDEADLK`. The fix: the same order in both.
//! 3. `pipes`: two processes that each write more than a pipe holds before reading: both
//!    asleep in `pipe_write`, a deadlock with no lock at all. The fix: one side reads first.
//! 4. `philosophers`: N dining philosophers each take the left fork, then the right: a ring.
//!    The fix: take the lower-numbered fork first.
//!
//! What to look for: the cycle (who holds what, who waits for what), the threads and
//! processes in state S with their wait channel (`futex_do_wait`, `locks_lock_inode_wait`,
//! `anon_pipe_write` on a 6.x kernel), how long detection took, and the fixes finishing.
//! `--hold MS` keeps each deadlock in place after detection so you can look at it yourself
//! (`ps -L`, `cat /proc/PID/task/*/wchan`, `gdb -p PID`).
//!
//! Caveats: a deadlock between threads cannot be undone from inside the process (no thread
//! can be forced to give up a mutex), which is why those threads run in a separate process
//! that can be killed. Every child asks for PR_SET_PDEATHSIG, so even `kill -9` of the lab
//! takes its deadlocked children down; the lock files in /dev/shm are removed on every exit
//! but that one (no handler runs on SIGKILL). parking_lot's detector resolves symbols for
//! its backtraces, which is slow in a debug build; if it has not answered by the deadline
//! the lab says so and relies on its own wait-for graph and /proc. Timings vary from run to
//! run; the cycles do not.

use clap::{Parser, ValueEnum};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::{fstat, Mode};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, getpid, pipe2, ForkResult, Pid};
use parking_lot::MutexGuard;
use proclab::measure::fmt_duration;
use proclab::{cleanup, flush_stdout, procfacts, say, Common, Lab, OrDie, Stopwatch, Watchdog};
use serde_json::{json, Value};
use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Threads,
    Processes,
    Pipes,
    Philosophers,
    All,
}

/// What a worker process (the lab re-executed) does: one deadlock or one fix, with threads.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Role {
    Pair,
    Philosophers,
    FixOrder,
    FixLockstep,
    FixJitter,
    FixTimed,
    FixOneLock,
    FixPhilosophers,
}

/// Deadlocks made on purpose, detected, shown as a cycle, broken, and then prevented.
#[derive(Parser)]
#[command(name = "deadlock", version)]
struct Args {
    /// Which deadlocks to make, see and break (each also runs its fix).
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    scenario: Scenario,
    /// The deadline, in ms, for detecting each deadlock (and for each fix to finish); at
    /// the deadline the watchdog breaks it anyway.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    deadline: u64,
    /// How many dining philosophers (and forks).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=32))]
    philosophers: u32,
    /// How many times each thread of a fix takes both locks (each philosopher eats).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    iters: u32,
    /// Keep each deadlock in place for this many ms after it was detected, to look at it
    /// with ps, gdb or /proc before it is broken.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    hold: u64,
    /// (internal) run as a worker process with this role.
    #[arg(long, value_enum, hide = true)]
    role: Option<Role>,
    #[command(flatten)]
    common: Common,
}

/// One row of the final table: what each scenario showed.
struct Outcome {
    scenario: &'static str,
    cycle: bool,
    detected: Option<Duration>,
    broken: bool,
    fix: String,
    fix_ok: bool,
}

fn main() {
    let args = Args::parse();
    if let Some(role) = args.role {
        worker(role, &args); // a re-executed worker process: never returns
    }
    let mut lab = Lab::start("deadlock", &args.common);
    let deadline = Duration::from_millis(args.deadline);
    let want = |s: Scenario| args.scenario == s || args.scenario == Scenario::All;
    let mut outcomes = Vec::new();
    say!(
        "deadline {} per deadlock; --hold {} ms before breaking each one",
        fmt_duration(deadline),
        args.hold
    );

    if want(Scenario::Threads) {
        lab.section("1. Two threads, two mutexes, opposite order");
        let mut o = thread_deadlock(&mut lab, &args, Role::Pair, "threads");
        lab.section("2. Four fixes, each taking away a condition the deadlock needs");
        let (names, ok) = coffman_fixes(&mut lab, &args);
        o.fix = names;
        o.fix_ok = ok;
        outcomes.push(o);
    }
    if want(Scenario::Processes) {
        lab.section("3. Two processes, two file locks");
        outcomes.push(process_deadlock(&mut lab, &args));
    }
    if want(Scenario::Pipes) {
        lab.section("4. Two processes, two full pipes, no lock at all");
        outcomes.push(pipe_deadlock(&mut lab, &args));
    }
    if want(Scenario::Philosophers) {
        lab.section(&format!("5. {} dining philosophers", args.philosophers));
        let mut o = thread_deadlock(&mut lab, &args, Role::Philosophers, "philosophers");
        let done = run_fix(&mut lab, &args, Role::FixPhilosophers, deadline);
        let meals = done.as_ref().and_then(|d| d["meals"].as_u64()).unwrap_or(0);
        let want_meals = args.philosophers as u64 * args.iters as u64;
        o.fix = "lower-numbered fork first".into();
        o.fix_ok = lab.check(
            "philosophers_fix_finished",
            done.is_some() && meals == want_meals,
            format_args!("taking the lower-numbered fork first: {meals} of {want_meals} meals eaten, no deadlock"),
        );
        outcomes.push(o);
    }

    lab.section("6. Verdict per scenario");
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|o| {
            vec![
                o.scenario.to_string(),
                if o.cycle { "yes" } else { "NO" }.to_string(),
                o.detected.map(fmt_duration).unwrap_or_else(|| "-".into()),
                if o.broken { "yes" } else { "NO" }.to_string(),
                o.fix.clone(),
                if o.cycle && o.broken && o.fix_ok {
                    "verified"
                } else {
                    "NOT verified"
                }
                .to_string(),
            ]
        })
        .collect();
    lab.table(
        "verdicts",
        &["scenario", "cycle seen", "detected in", "broken", "fix", "verdict"],
        &rows,
    );
    lab.finish("each deadlock formed for certain, was detected within the deadline with its cycle shown, and was broken; each fix took away a condition the deadlock needs and finished")
}

// ---------------------------------------------------------------------------------------
// Threads: a worker process whose threads deadlock; the lab watches and kills it.
// ---------------------------------------------------------------------------------------

/// A worker: this same program re-executed with `--role`, its stdout a pipe to the lab.
struct Worker {
    pid: Pid,
    lines: BufReader<std::fs::File>,
    stdin: std::fs::File,
}

impl Worker {
    /// The next JSON line the worker printed, or None at end of file (it died).
    fn next(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.lines.read_line(&mut line) {
            Ok(n) if n > 0 => serde_json::from_str(&line).ok(),
            _ => None,
        }
    }
    /// Tell the worker to go on (one line on its stdin).
    fn go(&mut self) {
        let _ = self.stdin.write_all(b"go\n");
    }
}

fn spawn_worker(role: Role, args: &Args) -> Worker {
    let exe = CString::new(
        std::env::current_exe()
            .or_die("current_exe")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .expect("no NUL");
    let argv: Vec<CString> = [
        "deadlock-worker".to_string(),
        "--role".into(),
        role.to_possible_value().expect("role").get_name().into(),
        "--philosophers".into(),
        args.philosophers.to_string(),
        "--iters".into(),
        args.iters.to_string(),
    ]
    .into_iter()
    .map(|a| CString::new(a).expect("no NUL"))
    .collect();
    // ANCHOR: spawn
    let lab = getpid().as_raw();
    let (rd, wr) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // the worker's stdout, to us
    let (in_r, in_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // its stdin, from us
    flush_stdout();
    // SAFETY: the child only calls dup2, execv and _exit (async-signal-safe); argv was
    // built before the fork.
    match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => unsafe {
            die_with_parent(lab);
            libc::dup2(wr.as_raw_fd(), 1); // the worker's JSON lines go into the pipe
            libc::dup2(in_r.as_raw_fd(), 0); // and it reads "go" from us
            let _ = nix::unistd::execv(&exe, &argv); // a fresh process: threads are fine there
            libc::_exit(127)
        },
        ForkResult::Parent { child } => {
            cleanup::track(child); // killed and reaped on every way out
            drop((wr, in_r)); // only the worker writes; its death gives us end of file
            Worker {
                pid: child,
                lines: BufReader::new(std::fs::File::from(rd)),
                stdin: std::fs::File::from(in_w),
            }
        }
    }
    // ANCHOR_END: spawn
}

/// Make the deadlock of `role` (two threads, or the philosophers) in a worker, see it from
/// the inside (the worker's report) and the outside (/proc), and break it.
fn thread_deadlock(lab: &mut Lab, args: &Args, role: Role, name: &'static str) -> Outcome {
    let deadline = Duration::from_millis(args.deadline);
    let sw = Stopwatch::start();
    let mut w = spawn_worker(role, args);
    let pid = w.pid;
    say!("worker {pid} runs the threads ({role:?}); the watchdog kills it at the deadline");
    // ANCHOR: watch
    let dog = Watchdog::arm(deadline, move || {
        let _ = kill(pid, Signal::SIGKILL); // not detected in time: break it anyway
    });
    let (mut report, mut confirmed, mut tasks) = (None, None, Vec::new());
    let mut stack = String::new();
    while let Some(ev) = w.next() {
        match ev["ev"].as_str() {
            Some("hold") => say!(
                "worker {pid}: {} (tid {}) holds {}",
                txt(&ev["thread"]),
                ev["tid"],
                txt(&ev["lock"])
            ),
            Some("cycle") => {
                let left = deadline.saturating_sub(dog.elapsed());
                (tasks, stack) = snapshot(pid, &cycle_threads(&ev), left); // seen from outside
                report = Some(ev);
                w.go(); // now the worker may ask parking_lot too
            }
            Some("parking_lot") => {
                confirmed = Some(ev);
                break;
            }
            _ => {}
        }
    }
    let fired = dog.disarm();
    // ANCHOR_END: watch
    let mut cycle_ok = false;
    let mut detected = None;
    let mut want: Vec<String> = Vec::new();
    if let Some(rep) = &report {
        let edges = rep["edges"].as_array().cloned().unwrap_or_default();
        let text: Vec<String> = edges
            .iter()
            .map(|e| {
                let [t, h, w, b] = ["thread", "holds", "waits_for", "held_by"].map(|k| txt(&e[k]));
                format!("{t} holds {h}, waits for {w} (held by {b})")
            })
            .collect();
        let us = rep["detected_after_us"].as_u64().unwrap_or(0);
        detected = Some(Duration::from_micros(us));
        lab.observe(
            "cycle",
            json!({"scenario": name, "pid": pid.as_raw(), "edges": edges, "detected_after_us": us}),
            format_args!(
                "wait-for graph of worker {pid}, {} after the last thread asked:\n      {}\n      -> back to the start: a cycle of {}",
                fmt_duration(Duration::from_micros(us)),
                text.join("\n      -> "),
                edges.len()
            ),
        );
        want = cycle_threads(rep);
        let closes = edges.iter().all(|e| want.iter().any(|n| e["held_by"] == n.as_str()));
        cycle_ok = !edges.is_empty() && closes;
    }
    // parking_lot's own detector, run after the snapshot: it wakes each deadlocked thread
    // for a moment to take its backtrace (resolving symbols takes a while in a debug build).
    let mut agrees = true;
    match &confirmed {
        Some(c) => {
            let threads = c["threads"].as_array().cloned().unwrap_or_default();
            let stuck: Vec<String> = threads
                .iter()
                .map(|t| {
                    format!(
                        "{} at {}",
                        t["thread"].as_str().unwrap_or("?"),
                        t["frames"][0].as_str().unwrap_or("?")
                    )
                })
                .collect();
            let found: Vec<&str> = threads.iter().filter_map(|t| t["thread"].as_str()).collect();
            agrees = want.len() == found.len() && want.iter().all(|n| found.contains(&n.as_str()));
            lab.observe(
                "parking_lot",
                json!({"scenario": name, "cycles": c["cycles"], "threads": threads, "after_us": c["after_us"], "agrees": agrees}),
                format_args!(
                    "parking_lot::deadlock::check_deadlock() agrees ({} later): {} cycle(s) of {} threads; their backtraces show where each waits:\n      {}",
                    fmt_duration(Duration::from_micros(c["after_us"].as_u64().unwrap_or(0))),
                    c["cycles"],
                    found.len(),
                    stuck.join("\n      ")
                ),
            );
        }
        None if report.is_some() => lab.observe(
            "parking_lot",
            json!({"scenario": name, "cycles": null, "agrees": null}),
            "parking_lot's detector had not answered by the deadline (it was still taking backtraces)",
        ),
        None => {}
    }
    // Seen from outside: every thread of the cycle asleep in the kernel, on a futex.
    let asleep = !want.is_empty()
        && want
            .iter()
            .all(|n| tasks.iter().any(|t| &t.1 == n && t.2 == 'S' && t.3.contains("futex")));
    lab.table(
        "tasks",
        &["tid", "thread", "state", "wchan"],
        &tasks
            .iter()
            .map(|t| vec![t.0.to_string(), t.1.clone(), t.2.to_string(), t.3.clone()])
            .collect::<Vec<_>>(),
    );
    let top: Vec<&str> = stack.lines().take(5).collect();
    if top.len() > 1 {
        lab.observe(
            "kernel_stack",
            json!({"pid": pid.as_raw(), "stack": top}),
            format_args!(
                "the kernel side of {}, {}",
                want.first().map(|s| s.as_str()).unwrap_or("?"),
                top.join("\n      ")
            ),
        );
    }
    let seen = cycle_ok && asleep && agrees;
    lab.check(
        &format!("{name}_cycle_seen"),
        seen,
        format_args!("{name}: the circular wait was seen in the wait-for graph (and by parking_lot, if it answered in time); every thread in it sleeps on a futex"),
    );
    hold(
        lab,
        args,
        pid,
        "`ps -L -o pid,tid,stat,wchan:32,comm -p PID` or `gdb -p PID -batch -ex 'thread apply all bt'`",
    );
    // ANCHOR: break
    let _ = kill(pid, Signal::SIGKILL); // no thread can be made to give a mutex back: end the process
    let status = waitpid(pid, None).or_die("waitpid");
    cleanup::forget(pid);
    // ANCHOR_END: break
    let took = sw.elapsed();
    let killed = matches!(status, WaitStatus::Signaled(_, Signal::SIGKILL, _));
    lab.observe(
        "broken",
        json!({"scenario": name, "pid": pid.as_raw(), "status": format!("{status:?}"), "watchdog_fired": fired,
               "ended_after_ms": took.as_millis() as u64, "deadline_ms": args.deadline, "hold_ms": args.hold}),
        format_args!(
            "broken: SIGKILL to worker {pid}, waitpid -> {status:?}; {} from its start to reaped{}",
            fmt_duration(took),
            if fired {
                " (the watchdog fired at the deadline)"
            } else {
                ""
            }
        ),
    );
    let in_time = took <= deadline + Duration::from_millis(args.hold) + Duration::from_secs(1);
    let broken = lab.check(
        &format!("{name}_broken"),
        killed && report.is_some() && in_time && !procfacts::exists(pid.as_raw()),
        format_args!("{name}: detected before the deadline, broken and reaped within deadline + 1 s"),
    );
    Outcome {
        scenario: name,
        cycle: seen,
        detected,
        broken,
        fix: String::new(),
        fix_ok: false,
    }
}

/// The threads named in a worker's cycle report.
fn cycle_threads(ev: &Value) -> Vec<String> {
    ev["edges"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|e| e["thread"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// In a child right after fork (async-signal-safe): if the lab dies, even of SIGKILL, the
/// kernel sends this child SIGKILL too, so a deadlocked child is never left behind.
fn die_with_parent(lab: i32) {
    // SAFETY: prctl, getppid and _exit are async-signal-safe.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL); // survives execv
        if libc::getppid() != lab {
            libc::_exit(1); // the lab died before prctl took effect
        }
    }
}

/// A JSON string's text ("?" if it is not a string).
fn txt(v: &Value) -> &str {
    v.as_str().unwrap_or("?")
}

/// The threads of `pid` once every one of `names` sleeps (bounded by `left`), and the
/// kernel stack of the first one (reading /proc/PID/task/TID/stack needs root).
fn snapshot(pid: Pid, names: &[String], left: Duration) -> (Vec<(i32, String, char, String)>, String) {
    let tasks = procfacts::poll_until(left, || {
        let t = task_rows(pid.as_raw());
        names
            .iter()
            .all(|n| t.iter().any(|r| &r.1 == n && r.2 == 'S'))
            .then_some(t)
    })
    .unwrap_or_else(|| task_rows(pid.as_raw()));
    let mut stack = String::new();
    if let Some(t) = tasks.iter().find(|t| names.first() == Some(&t.1)) {
        let path = format!("/proc/{pid}/task/{}/stack", t.0);
        stack = format!("{path}:\n{}", std::fs::read_to_string(&path).unwrap_or_default());
    }
    (tasks, stack)
}

/// (tid, thread name, state, wchan) of every thread of `pid`.
fn task_rows(pid: i32) -> Vec<(i32, String, char, String)> {
    let mut rows: Vec<(i32, String, char, String)> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
                .filter_map(|tid| {
                    let f = procfacts::facts(tid)?;
                    Some((
                        tid,
                        f.comm,
                        f.state,
                        procfacts::wchan(tid).unwrap_or_else(|| "-".into()),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    rows.sort();
    rows
}

/// With --hold, leave the deadlock in place for a person to inspect it.
fn hold(lab: &mut Lab, args: &Args, pid: Pid, look: &str) {
    if args.hold > 0 {
        say!(
            "holding the deadlock {} ms: try {}",
            args.hold,
            look.replace("PID", &pid.to_string())
        );
        lab.observe(
            "holding",
            json!({"pid": pid.as_raw(), "hold_ms": args.hold}),
            format_args!("deadlock of {pid} held for {} ms", args.hold),
        );
        std::thread::sleep(Duration::from_millis(args.hold)); // only so a person can look
    }
}

/// Run one fix in a worker; its final report, or None if it did not finish by the deadline.
fn run_fix(lab: &mut Lab, args: &Args, role: Role, deadline: Duration) -> Option<Value> {
    let mut w = spawn_worker(role, args);
    let pid = w.pid;
    let dog = Watchdog::arm(deadline, move || {
        let _ = kill(pid, Signal::SIGKILL); // a fix that does not finish is no fix
    });
    let mut done = None;
    while let Some(ev) = w.next() {
        if ev["ev"] == "done" {
            done = Some(ev);
        }
    }
    let fired = dog.disarm();
    let status = waitpid(pid, None).or_die("waitpid");
    cleanup::forget(pid);
    let done = done.filter(|_| !fired && status == WaitStatus::Exited(pid, 0));
    let us = done.as_ref().and_then(|d| d["elapsed_us"].as_u64()).unwrap_or(0);
    lab.observe(
        "fix",
        json!({"role": format!("{role:?}"), "finished": done.is_some(), "watchdog_fired": fired,
               "status": format!("{status:?}"), "report": done.clone().unwrap_or(Value::Null)}),
        format_args!(
            "{role:?}: {} in {}; {}",
            if done.is_some() { "finished" } else { "did NOT finish" },
            fmt_duration(Duration::from_micros(us)),
            done.as_ref().and_then(|d| d["summary"].as_str()).unwrap_or("no report")
        ),
    );
    done
}

fn coffman_fixes(lab: &mut Lab, args: &Args) -> (String, bool) {
    let deadline = Duration::from_millis(args.deadline);
    let k = args.iters as u64;
    let exact = |d: &Option<Value>| {
        d.as_ref()
            .is_some_and(|d| d["a"].as_u64() == Some(2 * k) && d["b"].as_u64() == Some(2 * k))
    };
    say!("mutual exclusion, hold and wait, no preemption, circular wait: remove any one and no deadlock can form");
    let order = run_fix(lab, args, Role::FixOrder, deadline);
    let ok1 = lab.check(
        "fix_order_finished",
        exact(&order),
        format_args!("no circular wait: both threads take A before B; {k} rounds each finished, counters exact"),
    );
    let lockstep = run_fix(lab, args, Role::FixLockstep, deadline);
    let rounds = lockstep.as_ref().and_then(|d| d["rounds"].as_u64()).unwrap_or(0);
    let wins = lockstep
        .as_ref()
        .and_then(|d| d["successes"].as_u64())
        .unwrap_or(u64::MAX);
    let ok2 = lab.check(
        "livelock_in_lockstep",
        rounds > 0 && wins == 0,
        format_args!("livelock risk: try_lock + release in perfect lockstep made {wins} progress in {rounds} rounds although both kept trying"),
    );
    let jitter = run_fix(lab, args, Role::FixJitter, deadline);
    let ok3 = lab.check(
        "fix_trylock_finished",
        exact(&jitter) && jitter.as_ref().and_then(|d| d["retries"].as_u64()).unwrap_or(0) >= 1,
        format_args!(
            "no hold-and-wait: try_lock, release and a random back-off; {k} rounds each finished, counters exact"
        ),
    );
    let timed = run_fix(lab, args, Role::FixTimed, deadline);
    let gave_up = timed.as_ref().and_then(|d| d["gave_up"].as_u64()).unwrap_or(0);
    let ok4 = lab.check(
        "fix_timed_finished",
        exact(&timed) && gave_up >= 1,
        format_args!("no (endless) wait: a timed lock gave up {gave_up} time(s) inside a certain circular wait, released, and all {k} rounds finished"),
    );
    let one = run_fix(lab, args, Role::FixOneLock, deadline);
    let ok5 = lab.check(
        "fix_one_lock_finished",
        exact(&one),
        format_args!("no second lock: one mutex guards both counters; {k} rounds each finished, counters exact"),
    );
    let rows: Vec<Vec<String>> = [
        ("circular wait", "global order A then B", &order),
        ("hold and wait", "try_lock + release, random back-off", &jitter),
        ("no preemption", "timed lock gives up", &timed),
        ("a second lock to wait for", "one lock for both", &one),
    ]
    .iter()
    .map(|(cond, fix, d)| {
        vec![
            cond.to_string(),
            fix.to_string(),
            d.as_ref()
                .and_then(|d| d["elapsed_us"].as_u64())
                .map(|us| fmt_duration(Duration::from_micros(us)))
                .unwrap_or_else(|| "did not finish".into()),
            d.as_ref()
                .and_then(|d| d["retries"].as_u64())
                .map(|r| r.to_string())
                .unwrap_or_else(|| "0".into()),
        ]
    })
    .collect();
    lab.table("fixes", &["takes away", "fix", "time", "retries"], &rows);
    ("four fixes".into(), ok1 && ok2 && ok3 && ok4 && ok5)
}

// ---------------------------------------------------------------------------------------
// The worker process (the lab re-executed with --role): threads that deadlock, or a fix.
// ---------------------------------------------------------------------------------------

fn emit(v: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// (thread, lock it holds, lock it waits for, thread holding that lock), as indices.
type Edge = (usize, usize, usize, usize);

/// The wait-for graph: for each thread, the locks it holds and the one it waits for.
#[derive(Default)]
struct WaitFor {
    nodes: std::sync::Mutex<Vec<Node>>,
}

struct Node {
    name: String,
    id: std::thread::ThreadId,
    holds: Vec<usize>,
    wants: Option<usize>,
    since: Instant,
}

impl WaitFor {
    fn join(&self, name: &str) -> usize {
        let mut n = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        n.push(Node {
            name: name.into(),
            id: std::thread::current().id(),
            holds: vec![],
            wants: None,
            since: Instant::now(),
        });
        n.len() - 1
    }
    fn wants(&self, me: usize, lock: usize) {
        let mut n = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        n[me].wants = Some(lock);
        n[me].since = Instant::now();
    }
    fn got(&self, me: usize, lock: usize) {
        let mut n = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        n[me].wants = None;
        n[me].holds.push(lock);
    }
    // ANCHOR: cycle
    /// Follow "waits for a lock held by" from each thread; coming back to the start is a cycle.
    /// Returns (thread, lock it holds, lock it waits for, thread holding that) for each edge.
    fn cycle(&self) -> Option<(Vec<Edge>, Instant)> {
        let n = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let holder = |lock: usize| n.iter().position(|t| t.holds.contains(&lock));
        for start in 0..n.len() {
            let (mut t, mut edges) = (start, Vec::new());
            while let (Some(lock), Some(&held)) = (n[t].wants, n[t].holds.first()) {
                let Some(next) = holder(lock) else { break };
                edges.push((t, held, lock, next));
                if next == start {
                    let formed = edges.iter().map(|e| n[e.0].since).max()?;
                    return Some((edges, formed));
                }
                if edges.len() > n.len() {
                    break; // a cycle that does not pass through `start`
                }
                t = next;
            }
        }
        None
    }
    // ANCHOR_END: cycle
}

fn worker(role: Role, args: &Args) -> ! {
    let n = args.philosophers as usize;
    let k = args.iters as u64;
    match role {
        Role::Pair => ring(&["t1", "t2"].map(String::from), &["A", "B"].map(String::from)),
        Role::Philosophers => ring(
            &(0..n).map(|i| format!("phil{i}")).collect::<Vec<_>>(),
            &(0..n).map(|i| format!("fork{i}")).collect::<Vec<_>>(),
        ),
        Role::FixPhilosophers => fix_philosophers(n, k),
        _ => fix_pair(role, k),
    }
    std::process::exit(0)
}

/// Thread i takes lock i, waits until every thread holds its first lock, then asks for lock
/// i+1: with two threads, t1 takes A then B and t2 takes B then A; with N philosophers,
/// each takes its left fork then its right one. The threads never return.
fn ring(threads: &[String], locks: &[String]) {
    let n = threads.len();
    let mutexes: Arc<Vec<parking_lot::Mutex<()>>> = Arc::new((0..n).map(|_| parking_lot::Mutex::new(())).collect());
    let graph = Arc::new(WaitFor::default());
    let all_hold = Arc::new(Barrier::new(n));
    for i in 0..n {
        let (mutexes, graph, all_hold) = (mutexes.clone(), graph.clone(), all_hold.clone());
        let (name, lock) = (threads[i].clone(), locks[i].clone());
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                // ANCHOR: ring
                let me = graph.join(&name);
                let (first, second) = (i, (i + 1) % n);
                graph.wants(me, first);
                let _held = mutexes[first].lock();
                graph.got(me, first);
                emit(json!({"ev": "hold", "thread": name, "tid": tid(), "lock": lock}));
                all_hold.wait(); // every thread now holds its first lock: the cycle is certain
                graph.wants(me, second);
                let _never = mutexes[second].lock(); // blocks forever: its holder waits for us
                                                     // ANCHOR_END: ring
                unreachable!("a thread got out of the deadlock");
            })
            .expect("spawn thread");
    }
    // The detector: our own wait-for graph first, then parking_lot's own detector.
    let (edges, formed) = loop {
        match graph.cycle() {
            Some(c) if c.0.len() == n => break c,
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    };
    let detected_us = formed.elapsed().as_micros() as u64;
    let edges: Vec<Value> = {
        let nodes = graph.nodes.lock().unwrap_or_else(|e| e.into_inner());
        edges
            .iter()
            .map(|&(t, held, wanted, by)| {
                json!({"thread": nodes[t].name, "holds": locks[held], "waits_for": locks[wanted], "held_by": nodes[by].name})
            })
            .collect()
    };
    emit(json!({"ev": "cycle", "edges": edges, "detected_after_us": detected_us}));
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line); // the lab looks at /proc first
    let sw = Stopwatch::start();
    // ANCHOR: parking_lot
    let cycles = loop {
        let found = parking_lot::deadlock::check_deadlock(); // its own graph of parked threads
        if !found.is_empty() {
            break found;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // ANCHOR_END: parking_lot
    let nodes = graph.nodes.lock().unwrap_or_else(|e| e.into_inner());
    let name_of = |id| {
        nodes
            .iter()
            .find(|t| t.id == id)
            .map(|t| t.name.clone())
            .unwrap_or_default()
    };
    let pl_threads: Vec<Value> = cycles
        .iter()
        .flatten()
        .map(|t| {
            let mut frames = Vec::new();
            for f in t.backtrace().frames() {
                for s in f.symbols() {
                    let name = s.name().map(|n| format!("{n:#}")).unwrap_or_default();
                    if name.starts_with("deadlock::") {
                        let file = s
                            .filename()
                            .and_then(|p| p.file_name())
                            .map(|f| f.to_string_lossy().into_owned());
                        frames.push(format!(
                            "{name} ({}:{})",
                            file.unwrap_or_default(),
                            s.lineno().unwrap_or(0)
                        ));
                    }
                }
            }
            json!({"thread": name_of(t.thread_id()), "frames": frames})
        })
        .collect();
    emit(
        json!({"ev": "parking_lot", "cycles": cycles.len(), "threads": pl_threads,
                "after_us": sw.elapsed().as_micros() as u64}),
    );
    drop(nodes);
    loop {
        std::thread::park(); // the lab kills this process: that is the only way out
    }
}

/// Two threads, two counters, each guarded by its own lock (or one lock for both); every
/// round takes both locks and adds one to each counter. Prints the counters and the time.
fn fix_pair(role: Role, k: u64) {
    let a = Arc::new(parking_lot::Mutex::new(0u64));
    let b = Arc::new(parking_lot::Mutex::new(0u64));
    let both = Arc::new(parking_lot::Mutex::new((0u64, 0u64)));
    let start = Arc::new(Barrier::new(2));
    let retries = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let gave_up = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let rounds_lockstep = 200u64;
    let successes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sw = Stopwatch::start();
    let threads: Vec<_> = (0..2)
        .map(|me| {
            let (a, b, both, start) = (a.clone(), b.clone(), both.clone(), start.clone());
            let (retries, gave_up, successes) = (retries.clone(), gave_up.clone(), successes.clone());
            // t1 takes A first, t2 takes B first: the order that deadlocks in section 1.
            let (first, second) = if me == 0 {
                (a.clone(), b.clone())
            } else {
                (b.clone(), a.clone())
            };
            std::thread::Builder::new()
                .name(format!("t{}", me + 1))
                .spawn(move || {
                    use std::sync::atomic::Ordering::Relaxed;
                    let mut rng = Rng::new(me as u64 + 1);
                    start.wait();
                    match role {
                        // ANCHOR: fix_order
                        Role::FixOrder => {
                            for _ in 0..k {
                                let mut ga = a.lock(); // everyone takes A first, then B:
                                let mut gb = b.lock(); // no cycle can form
                                *ga += 1;
                                *gb += 1;
                            }
                        }
                        // ANCHOR_END: fix_order
                        // ANCHOR: fix_trylock
                        Role::FixJitter => {
                            let (mut done, mut first_round) = (0, true);
                            while done < k {
                                let mut g1 = first.lock();
                                if std::mem::take(&mut first_round) {
                                    start.wait(); // both hold their first lock: the deadlock's setting
                                }
                                match second.try_lock() {
                                    Some(mut g2) => {
                                        *g1 += 1;
                                        *g2 += 1;
                                        done += 1;
                                    }
                                    None => {
                                        MutexGuard::unlock_fair(g1); // give back what we hold: no hold-and-wait
                                        retries.fetch_add(1, Relaxed);
                                        let pause = 1 + rng.below(50); // jitter: 1..50 µs
                                        std::thread::sleep(Duration::from_micros(pause));
                                    }
                                }
                            }
                        }
                        // ANCHOR_END: fix_trylock
                        // ANCHOR: lockstep
                        Role::FixLockstep => {
                            for _ in 0..rounds_lockstep {
                                let g1 = first.lock();
                                start.wait(); // both hold their first lock (perfectly in step)
                                let got = second.try_lock().map(|mut g2| *g2 += 1).is_some();
                                successes.fetch_add(got as u64, Relaxed);
                                start.wait(); // both have tried before either lets go
                                drop(g1); // release and retry, both after the same back-off
                                retries.fetch_add(!got as u64, Relaxed);
                            }
                        }
                        // ANCHOR_END: lockstep
                        // ANCHOR: fix_timed
                        Role::FixTimed => {
                            let patience = Duration::from_millis(if me == 0 { 10 } else { 1000 });
                            let (mut done, mut first_round) = (0, true);
                            while done < k {
                                let mut g1 = first.lock();
                                if std::mem::take(&mut first_round) {
                                    start.wait(); // both hold their first lock: a certain cycle
                                }
                                match second.try_lock_for(patience) {
                                    Some(mut g2) => {
                                        *g1 += 1;
                                        *g2 += 1;
                                        done += 1;
                                    }
                                    None => {
                                        MutexGuard::unlock_fair(g1); // gave up: hand A to the waiter
                                        gave_up.fetch_add(1, Relaxed);
                                        retries.fetch_add(1, Relaxed);
                                        std::thread::sleep(Duration::from_micros(1 + rng.below(50)));
                                    }
                                }
                            }
                        }
                        // ANCHOR_END: fix_timed
                        // ANCHOR: fix_one
                        Role::FixOneLock => {
                            for _ in 0..k {
                                let mut g = both.lock(); // one lock guards both counters
                                g.0 += 1;
                                g.1 += 1;
                            }
                        }
                        // ANCHOR_END: fix_one
                        _ => unreachable!(),
                    }
                })
                .expect("spawn thread")
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let us = sw.elapsed().as_micros() as u64;
    use std::sync::atomic::Ordering::Relaxed;
    let (va, vb) = if role == Role::FixOneLock {
        let g = both.lock();
        (g.0, g.1)
    } else {
        (*a.lock(), *b.lock())
    };
    let retries = retries.load(Relaxed);
    let summary = match role {
        Role::FixLockstep => format!(
            "{} successes in {rounds_lockstep} rounds x 2 threads: {retries} failed try_locks, no progress (livelock)",
            successes.load(Relaxed)
        ),
        Role::FixTimed => format!(
            "A = {va}, B = {vb}; t1 gave up {} time(s) after waiting 10 ms for B, each time handing A to t2",
            gave_up.load(Relaxed)
        ),
        Role::FixJitter => {
            format!("A = {va}, B = {vb}; {retries} failed try_locks, each followed by release and back-off")
        }
        _ => format!("A = {va}, B = {vb}"),
    };
    emit(
        json!({"ev": "done", "role": format!("{role:?}"), "a": va, "b": vb, "elapsed_us": us,
                "retries": retries, "gave_up": gave_up.load(Relaxed), "rounds": rounds_lockstep,
                "successes": successes.load(Relaxed), "summary": summary}),
    );
}

/// N philosophers, each eating k meals, taking the lower-numbered fork first.
fn fix_philosophers(n: usize, k: u64) {
    let forks: Arc<Vec<parking_lot::Mutex<u64>>> = Arc::new((0..n).map(|_| parking_lot::Mutex::new(0)).collect());
    let meals = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sw = Stopwatch::start();
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (forks, meals) = (forks.clone(), meals.clone());
            std::thread::spawn(move || {
                // ANCHOR: fix_philosophers
                let (left, right) = (i, (i + 1) % n);
                let (low, high) = (left.min(right), left.max(right)); // the last one turns around
                for _ in 0..k {
                    let mut f1 = forks[low].lock();
                    let mut f2 = forks[high].lock();
                    *f1 += 1;
                    *f2 += 1;
                    meals.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                // ANCHOR_END: fix_philosophers
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let m = meals.load(std::sync::atomic::Ordering::Relaxed);
    emit(
        json!({"ev": "done", "meals": m, "elapsed_us": sw.elapsed().as_micros() as u64,
                "summary": format!("{m} meals by {n} philosophers")}),
    );
}

/// A tiny xorshift generator for back-off jitter (no dependency needed).
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Rng((t ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

// ---------------------------------------------------------------------------------------
// Processes: file locks held by two forked children.
// ---------------------------------------------------------------------------------------

/// One end of a pipe each way between the lab and one child: "ready" up, "go" down.
struct Gate {
    ready_r: OwnedFd,
    ready_w: OwnedFd,
    go_r: OwnedFd,
    go_w: OwnedFd,
}

fn gate() -> Gate {
    let (ready_r, ready_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2");
    let (go_r, go_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2");
    Gate {
        ready_r,
        ready_w,
        go_r,
        go_w,
    }
}

/// Async-signal-safe: write one byte.
fn signal_byte(fd: RawFd) {
    // SAFETY: writes one byte from a live buffer.
    unsafe { libc::write(fd, b"!".as_ptr().cast(), 1) };
}

/// Async-signal-safe: block until one byte arrives (or the other end is gone).
fn wait_byte(fd: RawFd) {
    let mut b = 0u8;
    // SAFETY: reads into a live one-byte buffer.
    while unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) } < 0 && Errno::last() == Errno::EINTR {}
}

/// In the lab: wait (bounded) for one byte from a child.
fn wait_byte_by(fd: RawFd, deadline: Instant) -> bool {
    let ms = deadline.saturating_duration_since(Instant::now()).as_millis() as i32;
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut p, 1, ms) } == 1; // bounded: a child may have died
    let mut b = 0u8;
    // SAFETY: reads into a live one-byte buffer.
    ready && unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) } == 1
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Flock,
    Fcntl,
}

/// Take an exclusive lock on `fd`, waiting for it. Returns 0 or the errno.
fn lock_file(kind: Kind, fd: RawFd) -> i32 {
    // SAFETY: flock/fcntl on a valid descriptor; the flock struct lives on the stack.
    let r = unsafe {
        match kind {
            Kind::Flock => libc::flock(fd, libc::LOCK_EX), // one lock per open file, no detection
            Kind::Fcntl => {
                let mut fl: libc::flock = std::mem::zeroed();
                fl.l_type = libc::F_WRLCK as i16;
                fl.l_whence = libc::SEEK_SET as i16; // l_start 0, l_len 0: the whole file
                libc::fcntl(fd, libc::F_SETLKW, &fl) // record lock: the kernel checks for cycles
            }
        }
    };
    if r == 0 {
        0
    } else {
        Errno::last_raw()
    }
}

// ANCHOR: lock_child
/// A child: open both files itself, lock `first`, report ready, wait for go, lock `second`.
/// Exits 0 if it got both, or with the errno of the failed lock (EDEADLK = 35).
fn lock_child(kind: Kind, first: &CString, second: &CString, g: &Gate) -> ! {
    // SAFETY (whole function): open, flock, fcntl, read, write and _exit only.
    let fa = unsafe { libc::open(first.as_ptr(), libc::O_RDWR) }; // our own open file
    let fb = unsafe { libc::open(second.as_ptr(), libc::O_RDWR) };
    lock_file(kind, fa);
    signal_byte(g.ready_w.as_raw_fd()); // "I hold my first lock"
    wait_byte(g.go_r.as_raw_fd()); // the barrier: the lab says go when both hold one
    let err = lock_file(kind, fb); // blocks while the other process holds it
    if err != 0 {
        say!(
            "lock on the second file failed: errno {err} (EDEADLK = {})",
            libc::EDEADLK
        );
        unsafe { libc::_exit(err) }
    }
    say!("got the second lock, finishing");
    unsafe { libc::_exit(0) }
}
// ANCHOR_END: lock_child

fn fork_lock_child(kind: Kind, first: &CString, second: &CString, g: &Gate) -> Pid {
    let lab = getpid().as_raw();
    flush_stdout();
    // SAFETY: the child runs lock_child: async-signal-safe calls only, then _exit.
    match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            die_with_parent(lab);
            lock_child(kind, first, second, g)
        }
        ForkResult::Parent { child } => {
            cleanup::track(child);
            child
        }
    }
}

/// One line of /proc/locks: (blocked request?, kind, pid, inode).
fn proc_locks() -> Vec<(bool, String, i32, u64, String)> {
    std::fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            let blocked = t.get(1) == Some(&"->");
            let f = if blocked { &t[2..] } else { &t[1..] };
            let pid = f.get(3)?.parse().ok()?;
            let inode = f.get(4)?.rsplit(':').next()?.parse().ok()?;
            Some((blocked, f.first()?.to_string(), pid, inode, l.trim().to_string()))
        })
        .collect()
}

/// (pid, lock it holds, lock it waits for, pid holding that lock).
type LockEdge = (i32, String, String, i32);

/// The wait-for cycle between `p1` and `p2` as /proc/locks shows it, if it is there:
/// (pid, lock it holds, lock it waits for, pid that holds it) per edge, and the lines.
fn lock_cycle(p1: i32, p2: i32, files: &[(u64, &str); 2]) -> Option<(Vec<LockEdge>, Vec<String>)> {
    let locks = proc_locks();
    let name = |ino: u64| files.iter().find(|f| f.0 == ino).map(|f| f.1.to_string());
    let holder = |ino: u64| locks.iter().find(|l| !l.0 && l.3 == ino).map(|l| l.2);
    let mut edges = Vec::new();
    for (me, other) in [(p1, p2), (p2, p1)] {
        let waits = locks.iter().find(|l| l.0 && l.2 == me && name(l.3).is_some())?;
        let holds = locks.iter().find(|l| !l.0 && l.2 == me && name(l.3).is_some())?;
        if holder(waits.3) != Some(other) {
            return None;
        }
        edges.push((me, name(holds.3)?, name(waits.3)?, other));
    }
    let lines = locks
        .iter()
        .filter(|l| (l.2 == p1 || l.2 == p2) && name(l.3).is_some())
        .map(|l| l.4.clone())
        .collect();
    Some((edges, lines))
}

fn process_deadlock(lab: &mut Lab, args: &Args) -> Outcome {
    let deadline = Duration::from_millis(args.deadline);
    // Two lock files in /dev/shm (tmpfs), named after the lab's pid and removed on every way out.
    let me = getpid();
    let names = [
        format!("/proclab-deadlock-{me}-lock-a"),
        format!("/proclab-deadlock-{me}-lock-b"),
    ];
    let mut files = [(0u64, "lock-a"), (0u64, "lock-b")];
    let mut paths = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let fd = shm_open(
            n.as_str(),
            OFlag::O_CREAT | OFlag::O_RDWR,
            Mode::from_bits_truncate(0o600),
        )
        .or_die("shm_open");
        cleanup::track_shm(n); // unlinked on every way out, SIGINT and SIGTERM included
        files[i].0 = fstat(&fd).or_die("fstat").st_ino; // /proc/locks names files by inode
        paths.push(CString::new(format!("/dev/shm{n}")).expect("no NUL"));
    }

    say!("flock: child 1 locks lock-a then lock-b, child 2 locks lock-b then lock-a");
    let sw = Stopwatch::start();
    let (g1, g2) = (gate(), gate());
    let c1 = fork_lock_child(Kind::Flock, &paths[0], &paths[1], &g1);
    let c2 = fork_lock_child(Kind::Flock, &paths[1], &paths[0], &g2);
    let until = Instant::now() + deadline;
    let both_hold = wait_byte_by(g1.ready_r.as_raw_fd(), until) && wait_byte_by(g2.ready_r.as_raw_fd(), until);
    signal_byte(g1.go_w.as_raw_fd()); // both hold their first lock: now ask for the second
    signal_byte(g2.go_w.as_raw_fd());
    let asked = Instant::now();
    // ANCHOR: proc_locks
    let seen = procfacts::poll_until(until.saturating_duration_since(Instant::now()), || {
        let (edges, lines) = lock_cycle(c1.as_raw(), c2.as_raw(), &files)?;
        let s1 = procfacts::state(c1.as_raw()).filter(|&s| s == 'S')?; // asleep in the kernel,
        let s2 = procfacts::state(c2.as_raw()).filter(|&s| s == 'S')?; // not spinning
        Some((edges, lines, s1, s2, asked.elapsed()))
    });
    // ANCHOR_END: proc_locks
    let mut cycle = false;
    let mut detected = None;
    if let Some((edges, lines, _, _, after)) = &seen {
        let w1 = procfacts::wchan(c1.as_raw()).unwrap_or_else(|| "-".into());
        let w2 = procfacts::wchan(c2.as_raw()).unwrap_or_else(|| "-".into());
        detected = Some(*after);
        lab.observe(
            "cycle",
            json!({"scenario": "processes", "lock": "flock",
                   "edges": edges.iter().map(|e| json!({"pid": e.0, "holds": e.1, "waits_for": e.2, "held_by": e.3})).collect::<Vec<_>>(),
                   "states": [{"pid": c1.as_raw(), "state": "S", "wchan": w1}, {"pid": c2.as_raw(), "state": "S", "wchan": w2}],
                   "proc_locks": lines, "detected_after_us": after.as_micros() as u64}),
            format_args!(
                "/proc/locks, {} after both asked:\n      {}\n    child {} holds {}, waits for {} (held by {})\n    child {} holds {}, waits for {} (held by {})\n    both in state S: {} in {w1}, {} in {w2}",
                fmt_duration(*after),
                lines.join("\n      "),
                edges[0].0, edges[0].1, edges[0].2, edges[0].3,
                edges[1].0, edges[1].1, edges[1].2, edges[1].3,
                c1, c2
            ),
        );
        cycle = both_hold && w1.contains("lock") && w2.contains("lock");
    }
    lab.show_tree(me);
    lab.check(
        "processes_cycle_seen",
        cycle,
        "processes: both children asleep (S) in a file-lock wait, and /proc/locks shows each holding the lock the other waits for",
    );
    hold(lab, args, c2, "`cat /proc/locks`, `lslocks` or `cat /proc/PID/wchan`");
    // ANCHOR: break_one
    kill(c2, Signal::SIGKILL).or_die("kill"); // the victim: its locks die with it
    let victim = waitpid(c2, None).or_die("waitpid");
    cleanup::forget(c2);
    let dog = Watchdog::arm(deadline, move || {
        let _ = kill(c1, Signal::SIGKILL);
    });
    let survivor = waitpid(c1, None).or_die("waitpid"); // it gets lock-b and finishes
    let fired = dog.disarm();
    cleanup::forget(c1);
    // ANCHOR_END: break_one
    let took = sw.elapsed();
    lab.observe(
        "broken",
        json!({"scenario": "processes", "victim": c2.as_raw(), "victim_status": format!("{victim:?}"),
               "survivor": c1.as_raw(), "survivor_status": format!("{survivor:?}"), "watchdog_fired": fired,
               "ended_after_ms": took.as_millis() as u64, "deadline_ms": args.deadline}),
        format_args!("broken: killed {c2} ({victim:?}); its flock locks were released, so {c1} got lock-b and ended: {survivor:?}"),
    );
    let broken = lab.check(
        "processes_broken",
        matches!(victim, WaitStatus::Signaled(_, Signal::SIGKILL, _))
            && survivor == WaitStatus::Exited(c1, 0)
            && !fired,
        "processes: killing one process released its locks and the other finished",
    );

    if !lab.json() {
        proclab::plain!("-- fcntl record locks: the same two-process cycle, but the kernel checks for it --");
    }
    let (g1, g2) = (gate(), gate());
    let c1 = fork_lock_child(Kind::Fcntl, &paths[0], &paths[1], &g1);
    let c2 = fork_lock_child(Kind::Fcntl, &paths[1], &paths[0], &g2);
    let until = Instant::now() + deadline;
    let ready = wait_byte_by(g1.ready_r.as_raw_fd(), until) && wait_byte_by(g2.ready_r.as_raw_fd(), until);
    // ANCHOR: edeadlk
    signal_byte(g1.go_w.as_raw_fd()); // child 1 asks for lock-b and sleeps...
    let c1_waits = procfacts::poll_until(until.saturating_duration_since(Instant::now()), || {
        let waiting = proc_locks()
            .iter()
            .any(|l| l.0 && l.2 == c1.as_raw() && l.3 == files[1].0);
        (waiting && procfacts::state(c1.as_raw()) == Some('S')).then_some(())
    });
    signal_byte(g2.go_w.as_raw_fd()); // ...then child 2 asks for lock-a, which closes the cycle
    let dog = Watchdog::arm(deadline, move || {
        let _ = kill(c1, Signal::SIGKILL);
        let _ = kill(c2, Signal::SIGKILL);
    });
    let st2 = waitpid(c2, None).or_die("waitpid"); // refused at once with EDEADLK
    let st1 = waitpid(c1, None).or_die("waitpid"); // child 2's exit released lock-b
    let fired = dog.disarm();
    // ANCHOR_END: edeadlk
    cleanup::forget(c1);
    cleanup::forget(c2);
    lab.observe(
        "edeadlk",
        json!({"refused": c2.as_raw(), "refused_status": format!("{st2:?}"), "errno": match st2 { WaitStatus::Exited(_, c) => c, _ => -1 },
               "waiter": c1.as_raw(), "waiter_status": format!("{st1:?}"), "waiter_was_blocked": c1_waits.is_some()}),
        format_args!(
            "child {c1} was blocked on lock-b; child {c2}'s F_SETLKW on lock-a came back at once with errno {} (EDEADLK); {c2} exited, so {c1} got lock-b: {st1:?}",
            match st2 { WaitStatus::Exited(_, c) => c, _ => -1 }
        ),
    );
    let edeadlk = lab.check(
        "fcntl_edeadlk",
        ready
            && c1_waits.is_some()
            && st2 == WaitStatus::Exited(c2, libc::EDEADLK)
            && st1 == WaitStatus::Exited(c1, 0)
            && !fired,
        "fcntl: the kernel found the cycle itself and refused the request that would close it with EDEADLK",
    );

    // The fix: both processes take lock-a before lock-b.
    let sw_fix = Stopwatch::start();
    let (g1, g2) = (gate(), gate());
    let c1 = fork_lock_child(Kind::Flock, &paths[0], &paths[1], &g1);
    let c2 = fork_lock_child(Kind::Flock, &paths[0], &paths[1], &g2);
    signal_byte(g1.go_w.as_raw_fd());
    signal_byte(g2.go_w.as_raw_fd());
    let dog = Watchdog::arm(deadline, move || {
        let _ = kill(c1, Signal::SIGKILL);
        let _ = kill(c2, Signal::SIGKILL);
    });
    let s1 = waitpid(c1, None).or_die("waitpid");
    let s2 = waitpid(c2, None).or_die("waitpid");
    let fired = dog.disarm();
    cleanup::forget(c1);
    cleanup::forget(c2);
    let fix_time = sw_fix.elapsed();
    lab.observe(
        "fix",
        json!({"scenario": "processes", "finished": !fired, "statuses": [format!("{s1:?}"), format!("{s2:?}")], "elapsed_us": fix_time.as_micros() as u64}),
        format_args!("same order (lock-a, then lock-b) in both: {s1:?}, {s2:?} in {}", fmt_duration(fix_time)),
    );
    let fix_ok = lab.check(
        "processes_fix_finished",
        s1 == WaitStatus::Exited(c1, 0) && s2 == WaitStatus::Exited(c2, 0) && !fired,
        "processes: with one global order both processes got both locks and finished",
    );
    for n in &names {
        shm_unlink(n.as_str()).or_die("shm_unlink");
        cleanup::forget_shm(n);
    }
    Outcome {
        scenario: "processes",
        cycle,
        detected,
        broken: broken && edeadlk,
        fix: "global order (+ EDEADLK)".into(),
        fix_ok,
    }
}

// ---------------------------------------------------------------------------------------
// Pipes: two processes, each writing more than a pipe holds before reading.
// ---------------------------------------------------------------------------------------

/// Async-signal-safe: write all of `msg` to `fd` (blocks while the pipe is full).
fn send_all(fd: RawFd, msg: &[u8]) -> bool {
    let mut off = 0;
    while off < msg.len() {
        // SAFETY: writes from a live slice.
        let n = unsafe { libc::write(fd, msg[off..].as_ptr().cast(), msg.len() - off) };
        if n <= 0 {
            return false;
        }
        off += n as usize;
    }
    true
}

/// Async-signal-safe: fill `buf` from `fd`.
fn recv_all(fd: RawFd, buf: &mut [u8]) -> bool {
    let mut off = 0;
    while off < buf.len() {
        // SAFETY: reads into a live slice.
        let n = unsafe { libc::read(fd, buf[off..].as_mut_ptr().cast(), buf.len() - off) };
        if n <= 0 {
            return false;
        }
        off += n as usize;
    }
    true
}

// ANCHOR: pipe_child
/// A child: send `msg` on `out`, receive as many bytes on `inp` (or the other way round).
/// Exits 0 when every byte went out and came in.
fn pipe_child(out: RawFd, inp: RawFd, msg: &[u8], buf: &mut [u8], read_first: bool) -> ! {
    let ok = match read_first {
        true => recv_all(inp, buf) && send_all(out, msg), // B in the fix: read, then answer
        false => send_all(out, msg) && recv_all(inp, buf), // the deadlock: both write first
    };
    // SAFETY: leave without running the parent's code.
    unsafe { libc::_exit(if ok { 0 } else { 1 }) }
}
// ANCHOR_END: pipe_child

fn fork_pipe_child(out: &OwnedFd, inp: &OwnedFd, msg: &[u8], buf: &mut [u8], read_first: bool) -> Pid {
    let lab = getpid().as_raw();
    flush_stdout();
    // SAFETY: the child runs pipe_child: read, write and _exit only; buffers allocated before.
    match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            die_with_parent(lab);
            pipe_child(out.as_raw_fd(), inp.as_raw_fd(), msg, buf, read_first)
        }
        ForkResult::Parent { child } => {
            cleanup::track(child);
            child
        }
    }
}

/// Bytes waiting in a pipe, read through our copy of its read end.
fn queued(fd: &OwnedFd) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    n
}

fn pipe_deadlock(lab: &mut Lab, args: &Args) -> Outcome {
    let deadline = Duration::from_millis(args.deadline);
    let (ab_r, ab_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // A -> B
    let (ba_r, ba_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // B -> A
    let cap = fcntl(&ab_w, FcntlArg::F_GETPIPE_SZ).or_die("fcntl(F_GETPIPE_SZ)") as usize; // what a pipe holds
    let msg = vec![0x5au8; 2 * cap]; // allocated before fork: the children only write it
    let mut buf = vec![0u8; 2 * cap];
    say!(
        "pipe capacity {cap} bytes; A and B each write {} bytes before reading",
        2 * cap
    );
    let sw = Stopwatch::start();
    // ANCHOR: pipes
    let a = fork_pipe_child(&ab_w, &ba_r, &msg, &mut buf, false); // A: write all, then read
    let b = fork_pipe_child(&ba_w, &ab_r, &msg, &mut buf, false); // B: the same
    drop((ab_w, ba_w)); // we keep only the read ends, to count what waits in each pipe
    let seen = procfacts::poll_until(deadline, || {
        let wa = procfacts::wchan(a.as_raw()).filter(|w| w.contains("pipe_write"))?;
        let wb = procfacts::wchan(b.as_raw()).filter(|w| w.contains("pipe_write"))?;
        let full = queued(&ab_r) as usize == cap && queued(&ba_r) as usize == cap;
        let asleep = procfacts::state(a.as_raw()) == Some('S') && procfacts::state(b.as_raw()) == Some('S');
        (full && asleep).then(|| (wa, wb, sw.elapsed()))
    });
    // ANCHOR_END: pipes
    let cycle = seen.is_some();
    if let Some((wa, wb, after)) = &seen {
        lab.observe(
            "pipes_blocked",
            json!({"scenario": "pipes", "capacity": cap, "message": 2 * cap,
                   "writers": [{"pid": a.as_raw(), "state": "S", "wchan": wa, "queued_in_its_pipe": queued(&ab_r)},
                               {"pid": b.as_raw(), "state": "S", "wchan": wb, "queued_in_its_pipe": queued(&ba_r)}],
                   "detected_after_us": after.as_micros() as u64}),
            format_args!(
                "A {a}: state S in {wa}, pipe A->B holds {} of {cap} bytes (full); B {b}: state S in {wb}, pipe B->A holds {} (full)\n    A waits for B to read; B waits for A to read: a cycle, seen {} after the start",
                queued(&ab_r),
                queued(&ba_r),
                fmt_duration(*after)
            ),
        );
    }
    lab.show_tree(getpid());
    lab.check(
        "pipes_blocked",
        cycle,
        "pipes: both writers asleep (S) in pipe_write with both pipes full: each waits for the other to read",
    );
    hold(lab, args, a, "`cat /proc/PID/wchan` or `ls -l /proc/PID/fd`");
    let _ = kill(a, Signal::SIGKILL); // nothing will ever read: end both
    let _ = kill(b, Signal::SIGKILL);
    let sa = waitpid(a, None).or_die("waitpid");
    let sb = waitpid(b, None).or_die("waitpid");
    cleanup::forget(a);
    cleanup::forget(b);
    let took = sw.elapsed();
    lab.observe(
        "broken",
        json!({"scenario": "pipes", "statuses": [format!("{sa:?}"), format!("{sb:?}")], "ended_after_ms": took.as_millis() as u64}),
        format_args!("broken: both killed ({sa:?}, {sb:?}) {} after the start", fmt_duration(took)),
    );
    let broken = lab.check(
        "pipes_broken",
        matches!(sa, WaitStatus::Signaled(_, Signal::SIGKILL, _))
            && matches!(sb, WaitStatus::Signaled(_, Signal::SIGKILL, _))
            && took <= deadline + Duration::from_millis(args.hold) + Duration::from_secs(1),
        "pipes: both writers were killed and reaped within deadline + 1 s",
    );
    drop((ab_r, ba_r));

    // The fix: a protocol in which B reads before it writes.
    let (ab_r, ab_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2");
    let (ba_r, ba_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2");
    let sw_fix = Stopwatch::start();
    let a = fork_pipe_child(&ab_w, &ba_r, &msg, &mut buf, false); // A: write, then read
    let b = fork_pipe_child(&ba_w, &ab_r, &msg, &mut buf, true); // B: read, then write
    drop((ab_w, ba_w, ab_r, ba_r));
    let dog = Watchdog::arm(deadline, move || {
        let _ = kill(a, Signal::SIGKILL);
        let _ = kill(b, Signal::SIGKILL);
    });
    let sa = waitpid(a, None).or_die("waitpid");
    let sb = waitpid(b, None).or_die("waitpid");
    let fired = dog.disarm();
    cleanup::forget(a);
    cleanup::forget(b);
    let t = sw_fix.elapsed();
    lab.observe(
        "fix",
        json!({"scenario": "pipes", "finished": !fired, "bytes_each_way": 2 * cap, "statuses": [format!("{sa:?}"), format!("{sb:?}")], "elapsed_us": t.as_micros() as u64}),
        format_args!("B reads first: {} bytes each way, A {sa:?}, B {sb:?}, in {}", 2 * cap, fmt_duration(t)),
    );
    let fix_ok = lab.check(
        "pipes_fix_finished",
        sa == WaitStatus::Exited(a, 0) && sb == WaitStatus::Exited(b, 0) && !fired,
        "pipes: when one side reads before writing, every byte crosses both ways and both finish",
    );
    Outcome {
        scenario: "pipes",
        cycle,
        detected: seen.map(|s| s.2),
        broken,
        fix: "B reads first".into(),
        fix_ok,
    }
}
