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
//!
//! The plumbing is in `labs/07_deadlock/`: `cli.rs` (the flags), `report.rs` (each
//! observation and table), `inspect.rs` (parsing /proc: threads, stacks, /proc/locks),
//! `waitfor.rs` (the worker's wait-for graph bookkeeping), `wire.rs` (the messages between
//! the lab and its children, the worker's reports, the lock files).

use clap::Parser;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{getpid, pipe2, ForkResult, Pid};
use parking_lot::MutexGuard;
use proclab::clock::{self, Deadline};
use proclab::measure::fmt_duration;
use proclab::{
    cleanup, flush_stdout, lifeline, observe, procfacts, say, Lab, OrDie, Status,
    Stopwatch, Watchdog,
};
use serde_json::{json, Value};
use std::ffi::CString;
use std::io::BufReader;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Lab time since `t0` (a `clock::lab_ns()`): a `--step` pause does not count.
fn since(t0: u64) -> Duration {
    Duration::from_nanos(clock::lab_ns().saturating_sub(t0))
}

mod cli;
mod inspect;
mod report;
mod waitfor;
mod wire;
use cli::{Args, Role, Scenario};
use inspect::{lock_cycle, proc_locks, queued, snapshot};
use report::{cycle_threads, field, txt, Outcome};
use waitfor::{Edge, WaitFor};
use wire::{
    emit, gate, recv_all, send_all, signal_byte, tid, wait_byte, wait_byte_by,
    Gate, Rng, Worker,
};

fn main() {
    let args = Args::parse();
    if let Some(role) = args.role {
        worker(role, &args); // a re-executed worker process: never returns
    }
    let mut lab = Lab::start(
        "deadlock",
        "each deadlock formed for certain, was detected within the deadline with its cycle shown, and was broken; each fix took away a condition the deadlock needs and finished",
        &args.common,
    );
    let want = |s: Scenario| args.scenario == s || args.scenario == Scenario::All;
    let mut outcomes = Vec::new();
    say!(
        "deadline {} per deadlock; --hold-ms {} before breaking each one",
        fmt_duration(args.deadline()),
        args.hold_ms
    );

    if want(Scenario::Threads) {
        lab.section("1. Two threads, two mutexes, opposite order");
        let mut o = thread_deadlock(&mut lab, &args, Role::Pair, "threads");
        lab.section(
            "2. Four fixes, each taking away a condition the deadlock needs",
        );
        (o.fix, o.fix_ok) = coffman_fixes(&mut lab, &args);
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
        let mut o =
            thread_deadlock(&mut lab, &args, Role::Philosophers, "philosophers");
        let done = run_fix(&mut lab, &args, Role::FixPhilosophers);
        let meals = field(&done, "meals").unwrap_or(0);
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
    report::verdicts(&mut lab, &outcomes);
    lab.finish()
}

// ---------------------------------------------------------------------------------------
// Children: every child is tracked for cleanup, dies with the lab, and is reaped.
// ---------------------------------------------------------------------------------------

/// Fork a child that runs `run` and leaves with `_exit`; the child is tracked for cleanup
/// and killed if the lab dies.
///
/// # Safety
/// `run` may only make async-signal-safe calls (it runs in a child of a threaded process).
unsafe fn fork_child(run: impl FnOnce()) -> Pid {
    let lab = getpid().as_raw();
    flush_stdout();
    // SAFETY: the child runs `run` (async-signal-safe calls only, see above), then _exit.
    match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            lifeline::die_with_parent(lab); // even a SIGKILLed lab takes it along
            run();
            // SAFETY: _exit is async-signal-safe (lock_child and pipe_child leave by themselves).
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => child, // tracked: killed and reaped on every way out
    }
}

/// Wait for every child under a watchdog that kills them all at the deadline; reap them.
/// Returns their statuses and whether the watchdog fired.
fn reap_all<const N: usize>(
    pids: [Pid; N],
    deadline: Duration,
) -> ([Status; N], bool) {
    let dog = Watchdog::arm(deadline, move || {
        for p in pids {
            let _ = kill(p, Signal::SIGKILL); // a fix that does not finish is no fix
        }
    });
    let statuses = pids.map(|p| Status(waitpid(p, None)));
    let fired = dog.disarm();
    pids.into_iter().for_each(cleanup::forget);
    (statuses, fired)
}

// ---------------------------------------------------------------------------------------
// Threads: a worker process whose threads deadlock; the lab watches and kills it.
// ---------------------------------------------------------------------------------------

fn spawn_worker(role: Role, args: &Args) -> Worker {
    // Built before the fork: after it, the child must not allocate.
    let (exe, argv) = wire::worker_argv(role, args);
    // ANCHOR: spawn
    let lab = getpid().as_raw();
    let (rd, wr) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // the worker's stdout, to us
    let (in_r, in_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // its stdin, from us
    flush_stdout();
    // SAFETY: the child only calls dup2, execv and _exit (async-signal-safe); argv was
    // built before the fork.
    match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => unsafe {
            lifeline::die_with_parent(lab);
            libc::dup2(wr.as_raw_fd(), 1); // the worker's JSON lines go into the pipe
            libc::dup2(in_r.as_raw_fd(), 0); // and it reads "go" from us
            let _ = nix::unistd::execv(&exe, &argv); // a fresh process: threads are fine there
            libc::_exit(127)
        },
        ForkResult::Parent { child } => {
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
fn thread_deadlock(
    lab: &mut Lab,
    args: &Args,
    role: Role,
    name: &'static str,
) -> Outcome {
    let deadline = args.deadline();
    let t0 = clock::lab_ns();
    let mut w = spawn_worker(role, args);
    let pid = w.pid;
    say!("worker {pid} runs the threads ({role:?}); the watchdog kills it at the deadline");
    // ANCHOR: watch
    let end = Deadline::after(deadline); // lab time: a --step pause does not count
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
                let left = end.remaining();
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
    // Inside: the worker's wait-for graph closes (every holder is itself in the cycle).
    let want = report.as_ref().map(cycle_threads).unwrap_or_default();
    let edges = report
        .as_ref()
        .map(|r| report::show_cycle(lab, name, pid, r))
        .unwrap_or_default();
    let cycle_ok = !edges.is_empty()
        && edges.iter().all(|e| want.iter().any(|n| e["held_by"] == n.as_str()));
    // parking_lot's own detector, run after the snapshot: it wakes each deadlocked thread
    // for a moment to take its backtrace (resolving symbols takes a while in a debug build).
    // Only an answer counts: parking_lot not answering by the deadline is no agreement.
    let agrees = confirmed.as_ref().map(report::parking_lot_threads).map(|found| {
        want.len() == found.len() && want.iter().all(|n| found.contains(n))
    });
    report::show_parking_lot(lab, name, confirmed.as_ref(), report.is_some());
    if let Some(agrees) = agrees {
        lab.check(
            &format!("{name}_parking_lot_agrees"),
            agrees,
            format_args!("{name}: parking_lot's own detector found the same threads deadlocked"),
        );
    }
    // Seen from outside: every thread of the cycle asleep in the kernel, on a futex.
    let asleep = !want.is_empty()
        && want.iter().all(|n| {
            tasks.iter().any(|t| &t.1 == n && t.2 == 'S' && t.3.contains("futex"))
        });
    report::show_tasks(lab, pid, &tasks, &stack, &want);
    let seen = cycle_ok && asleep;
    lab.check(
        &format!("{name}_cycle_seen"),
        seen,
        format_args!("{name}: the circular wait was seen in the wait-for graph, and every thread in it sleeps on a futex"),
    );
    report::hold(
        lab,
        args.hold_ms,
        pid,
        "`ps -L -o pid,tid,stat,wchan:32,comm -p PID` or `gdb -p PID -batch -ex 'thread apply all bt'`",
    );
    // ANCHOR: break
    let _ = kill(pid, Signal::SIGKILL); // no thread can be made to give a mutex back: end the process
    let status = Status(waitpid(pid, None));
    cleanup::forget(pid);
    // ANCHOR_END: break
    let took = since(t0);
    let killed = status.signal() == Some(Signal::SIGKILL);
    report::show_broken(lab, name, pid, &status, fired, took, args);
    let broken = lab.check(
        &format!("{name}_broken"),
        killed && report.is_some() && took <= args.ends_by() && !procfacts::exists(pid.as_raw()),
        format_args!("{name}: detected before the deadline, broken and reaped within deadline + 1 s"),
    );
    Outcome {
        scenario: name,
        cycle: seen && agrees != Some(false),
        detected: report.map(|r| {
            Duration::from_micros(r["detected_after_us"].as_u64().unwrap_or(0))
        }),
        broken,
        fix: String::new(),
        fix_ok: false,
    }
}

/// Run one fix in a worker; its final report, or None if it did not finish by the deadline.
fn run_fix(lab: &mut Lab, args: &Args, role: Role) -> Option<Value> {
    let mut w = spawn_worker(role, args);
    let pid = w.pid;
    let dog = Watchdog::arm(args.deadline(), move || {
        let _ = kill(pid, Signal::SIGKILL); // a fix that does not finish is no fix
    });
    let mut done = None;
    while let Some(ev) = w.next() {
        if ev["ev"] == "done" {
            done = Some(ev);
        }
    }
    let status = Status(waitpid(pid, None)); // bounded: the watchdog is still armed
    let fired = dog.disarm();
    cleanup::forget(pid);
    let done = done.filter(|_| !fired && status.code() == Some(0));
    report::show_fix(lab, role, &done, fired, &status);
    done
}

fn coffman_fixes(lab: &mut Lab, args: &Args) -> (String, bool) {
    let k = args.iters as u64;
    let exact = |d: &Option<Value>| {
        field(d, "a") == Some(2 * k) && field(d, "b") == Some(2 * k)
    };
    say!("mutual exclusion, hold and wait, no preemption, circular wait: remove any one and no deadlock can form");
    let order = run_fix(lab, args, Role::FixOrder);
    let ok1 = lab.check(
        "fix_order_finished",
        exact(&order),
        format_args!("no circular wait: both threads take A before B; {k} rounds each finished, counters exact"),
    );
    // A demonstration, not a check: two barriers per round force every try_lock to fail.
    let lockstep = run_fix(lab, args, Role::FixLockstep);
    let rounds = field(&lockstep, "rounds");
    let successes = field(&lockstep, "successes");
    let retries = field(&lockstep, "retries");
    let shown = successes.map_or("no report".into(), |s| s.to_string());
    let n = rounds.unwrap_or(0);
    observe!(
        lab,
        "livelock",
        "livelock, forced: try_lock + release in perfect lockstep made {shown} progress in {n} rounds although both kept trying",
        rounds,
        successes,
        retries
    );
    let jitter = run_fix(lab, args, Role::FixJitter);
    let ok3 = lab.check(
        "fix_trylock_finished",
        exact(&jitter) && field(&jitter, "retries").unwrap_or(0) >= 1,
        format_args!(
            "no hold-and-wait: try_lock, release and a random back-off; {k} rounds each finished, counters exact"
        ),
    );
    let timed = run_fix(lab, args, Role::FixTimed);
    let gave_up = field(&timed, "gave_up").unwrap_or(0);
    let ok4 = lab.check(
        "fix_timed_finished",
        exact(&timed) && gave_up >= 1,
        format_args!("no (endless) wait: a timed lock gave up {gave_up} time(s) inside a certain circular wait, released, and all {k} rounds finished"),
    );
    let one = run_fix(lab, args, Role::FixOneLock);
    let ok5 = lab.check(
        "fix_one_lock_finished",
        exact(&one),
        format_args!("no second lock: one mutex guards both counters; {k} rounds each finished, counters exact"),
    );
    report::fixes_table(
        lab,
        &[
            ("circular wait", "global order A then B", &order),
            ("hold and wait", "try_lock + release, random back-off", &jitter),
            ("no preemption", "timed lock gives up", &timed),
            ("a second lock to wait for", "one lock for both", &one),
        ],
    );
    ("four fixes".into(), ok1 && ok3 && ok4 && ok5)
}

// ---------------------------------------------------------------------------------------
// The worker process (the lab re-executed with --role): threads that deadlock, or a fix.
// ---------------------------------------------------------------------------------------

// The wait-for graph's bookkeeping (each thread's locks held and lock wanted) is in
// 07_deadlock/waitfor.rs; the detector is here.
impl WaitFor {
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
        Role::Pair => {
            ring(&["t1", "t2"].map(String::from), &["A", "B"].map(String::from))
        }
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
    let mutexes: Arc<Vec<parking_lot::Mutex<()>>> =
        Arc::new((0..n).map(|_| parking_lot::Mutex::new(())).collect());
    let graph = Arc::new(WaitFor::default());
    let all_hold = Arc::new(Barrier::new(n));
    // Tests only: every thread takes the lower-numbered lock first, so no cycle can form.
    let same_order = proclab::test_removes("same_order");
    for i in 0..n {
        let (mutexes, graph, all_hold) =
            (mutexes.clone(), graph.clone(), all_hold.clone());
        let (name, locks) = (threads[i].clone(), locks.to_vec());
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                // ANCHOR: ring
                let me = graph.join(&name);
                let (mut first, mut second) = (i, (i + 1) % n);
                if same_order && first > second {
                    (first, second) = (second, first);
                }
                graph.wants(me, first);
                let _held = mutexes[first].lock();
                graph.got(me, first);
                let lock = &locks[first];
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
    wire::emit_cycle(&graph, &edges, locks, detected_us);
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
    let stuck = cycles.iter().flatten().map(|t| {
        let symbols = t.backtrace().frames().iter().flat_map(|f| f.symbols());
        let at = symbols.map(|s| {
            (
                s.name().map(|n| format!("{n:#}")),
                s.filename().map(PathBuf::from),
                s.lineno(),
            )
        });
        (t.thread_id(), at.collect())
    });
    wire::emit_parking_lot(&graph, cycles.len(), stuck.collect(), sw.elapsed());
    loop {
        std::thread::park(); // the lab kills this process: that is the only way out
    }
}

/// Two threads, two counters, each guarded by its own lock (or one lock for both); every
/// round takes both locks and adds one to each counter. Prints the counters and the time.
fn fix_pair(role: Role, k: u64) {
    let pair = Arc::new(wire::Pair::new());
    let rounds_lockstep = 200u64;
    let sw = Stopwatch::start();
    let threads: Vec<_> = (0..2)
        .map(|me| {
            let pair = pair.clone();
            std::thread::Builder::new()
                .name(format!("t{}", me + 1))
                .spawn(move || {
                    use std::sync::atomic::Ordering::Relaxed;
                    let (a, b, both, start) =
                        (&pair.a, &pair.b, &pair.both, &pair.start); // see wire::Pair
                    let (retries, gave_up, successes) =
                        (&pair.retries, &pair.gave_up, &pair.successes);
                    // t1 takes A first, t2 takes B first: the order that deadlocks in section 1.
                    let (first, second) = if me == 0 { (a, b) } else { (b, a) };
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
                                        std::thread::sleep(Duration::from_micros(
                                            pause,
                                        ));
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
                                let got = second
                                    .try_lock()
                                    .map(|mut g2| *g2 += 1)
                                    .is_some();
                                successes.fetch_add(got as u64, Relaxed);
                                start.wait(); // both have tried before either lets go
                                drop(g1); // release and retry, both after the same back-off
                                retries.fetch_add(!got as u64, Relaxed);
                            }
                        }
                        // ANCHOR_END: lockstep
                        // ANCHOR: fix_timed
                        Role::FixTimed => {
                            let patience = Duration::from_millis(if me == 0 {
                                10
                            } else {
                                1000
                            });
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
                                        std::thread::sleep(Duration::from_micros(
                                            1 + rng.below(50),
                                        ));
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
    wire::emit_pair_done(role, &pair, sw.elapsed(), rounds_lockstep);
}

/// N philosophers, each eating k meals, taking the lower-numbered fork first.
fn fix_philosophers(n: usize, k: u64) {
    let forks: Arc<Vec<parking_lot::Mutex<u64>>> =
        Arc::new((0..n).map(|_| parking_lot::Mutex::new(0)).collect());
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
    wire::emit_meals(m, n, sw.elapsed());
}

// ---------------------------------------------------------------------------------------
// Processes: file locks held by two forked children.
// ---------------------------------------------------------------------------------------

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

/// Fork a child that runs lock_child, and the gate through which it says "ready" and
/// hears "go".
fn fork_lock_child(kind: Kind, first: &CString, second: &CString) -> (Pid, Gate) {
    let g = gate();
    // SAFETY: lock_child uses async-signal-safe calls only and leaves with _exit.
    let pid = unsafe { fork_child(|| lock_child(kind, first, second, &g)) };
    (pid, g)
}

fn process_deadlock(lab: &mut Lab, args: &Args) -> Outcome {
    let deadline = args.deadline();
    // Two lock files in /dev/shm (tmpfs), named after the lab's pid and removed on every way out.
    let me = getpid();
    let (names, files, paths) = wire::lock_files(me);
    // Tests only: child 2 locks in child 1's order, so no cycle can form.
    let same_order = proclab::test_removes("same_file_order");
    let (p2a, p2b) = if same_order { (0, 1) } else { (1, 0) };

    say!(
        "flock: child 1 locks lock-a then lock-b, child 2 locks lock-b then lock-a"
    );
    let t0 = clock::lab_ns();
    let (c1, g1) = fork_lock_child(Kind::Flock, &paths[0], &paths[1]);
    let (c2, g2) = fork_lock_child(Kind::Flock, &paths[p2a], &paths[p2b]);
    let until = Deadline::after(deadline);
    let both_hold =
        wait_byte_by(&g1.ready_r, until) && wait_byte_by(&g2.ready_r, until);
    signal_byte(g1.go_w.as_raw_fd()); // both hold their first lock: now ask for the second
    signal_byte(g2.go_w.as_raw_fd());
    let asked = clock::lab_ns();
    // ANCHOR: proc_locks
    let seen = procfacts::poll_until(until.remaining(), || {
        let (edges, lines) = lock_cycle(c1.as_raw(), c2.as_raw(), &files)?;
        let s1 = procfacts::state(c1.as_raw()).filter(|&s| s == 'S')?; // asleep in the kernel,
        let s2 = procfacts::state(c2.as_raw()).filter(|&s| s == 'S')?; // not spinning
        Some((edges, lines, s1, s2, since(asked)))
    });
    // ANCHOR_END: proc_locks
    let mut cycle = false;
    if let Some((edges, lines, _, _, after)) = &seen {
        let w1 = procfacts::wchan(c1.as_raw()).unwrap_or_else(|| "-".into());
        let w2 = procfacts::wchan(c2.as_raw()).unwrap_or_else(|| "-".into());
        report::show_lock_cycle(lab, [c1, c2], edges, lines, [&w1, &w2], *after);
        cycle = both_hold && w1.contains("lock") && w2.contains("lock");
    }
    lab.show_tree(me);
    lab.check(
        "processes_cycle_seen",
        cycle,
        "processes: both children asleep (S) in a file-lock wait, and /proc/locks shows each holding the lock the other waits for",
    );
    report::hold(
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
    let took = since(t0);
    report::show_lock_broken(
        lab,
        [c2, c1],
        [&victim, &survivor],
        fired,
        took,
        args.deadline_ms,
    );
    let broken = lab.check(
        "processes_broken",
        victim.signal() == Some(Signal::SIGKILL)
            && survivor.code() == Some(0)
            && !fired,
        "processes: killing one process released its locks and the other finished",
    );

    if !lab.json() {
        proclab::plain!("-- fcntl record locks: the same two-process cycle, but the kernel checks for it --");
    }
    let (c1, g1) = fork_lock_child(Kind::Fcntl, &paths[0], &paths[1]);
    let (c2, g2) = fork_lock_child(Kind::Fcntl, &paths[p2a], &paths[p2b]);
    let until = Deadline::after(deadline);
    let ready =
        wait_byte_by(&g1.ready_r, until) && wait_byte_by(&g2.ready_r, until);
    // ANCHOR: edeadlk
    signal_byte(g1.go_w.as_raw_fd()); // child 1 asks for lock-b and sleeps...
    let c1_waits = procfacts::poll_until(until.remaining(), || {
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
    let st2 = Status(waitpid(c2, None)); // refused at once with EDEADLK
    let st1 = Status(waitpid(c1, None)); // child 2's exit released lock-b
    let fired = dog.disarm();
    // ANCHOR_END: edeadlk
    cleanup::forget(c1);
    cleanup::forget(c2);
    report::show_edeadlk(lab, [c1, c2], [&st1, &st2], c1_waits.is_some());
    let edeadlk = lab.check(
        "fcntl_edeadlk",
        ready
            && c1_waits.is_some()
            && st2.code() == Some(libc::EDEADLK)
            && st1.code() == Some(0)
            && !fired,
        "fcntl: the kernel found the cycle itself and refused the request that would close it with EDEADLK",
    );

    // The fix: both processes take lock-a before lock-b.
    let sw_fix = Stopwatch::start();
    let (c1, g1) = fork_lock_child(Kind::Flock, &paths[0], &paths[1]);
    let (c2, g2) = fork_lock_child(Kind::Flock, &paths[0], &paths[1]);
    signal_byte(g1.go_w.as_raw_fd());
    signal_byte(g2.go_w.as_raw_fd());
    let ([s1, s2], fired) = reap_all([c1, c2], deadline);
    let fix_time = sw_fix.elapsed();
    report::show_lock_fix(lab, [&s1, &s2], fired, fix_time);
    let fix_ok = lab.check(
        "processes_fix_finished",
        s1.code() == Some(0) && s2.code() == Some(0) && !fired,
        "processes: with one global order both processes got both locks and finished",
    );
    wire::remove_lock_files(&names);
    Outcome {
        scenario: "processes",
        cycle,
        detected: seen.map(|s| s.4),
        broken: broken && edeadlk,
        fix: "global order (+ EDEADLK)".into(),
        fix_ok,
    }
}

// ---------------------------------------------------------------------------------------
// Pipes: two processes, each writing more than a pipe holds before reading.
// ---------------------------------------------------------------------------------------

// ANCHOR: pipe_child
/// A child: send `msg` on `out`, receive as many bytes on `inp` (or the other way round).
/// Exits 0 when every byte went out and came in.
fn pipe_child(
    out: RawFd,
    inp: RawFd,
    msg: &[u8],
    buf: &mut [u8],
    read_first: bool,
) -> ! {
    let ok = match read_first {
        true => recv_all(inp, buf) && send_all(out, msg), // B in the fix: read, then answer
        false => send_all(out, msg) && recv_all(inp, buf), // the deadlock: both write first
    };
    // SAFETY: leave without running the parent's code.
    unsafe { libc::_exit(if ok { 0 } else { 1 }) }
}
// ANCHOR_END: pipe_child

fn fork_pipe_child(
    out: &OwnedFd,
    inp: &OwnedFd,
    msg: &[u8],
    buf: &mut [u8],
    read_first: bool,
) -> Pid {
    let (out, inp) = (out.as_raw_fd(), inp.as_raw_fd());
    // SAFETY: pipe_child only reads, writes and _exits; its buffers were allocated before.
    unsafe { fork_child(|| pipe_child(out, inp, msg, buf, read_first)) }
}

fn pipe_deadlock(lab: &mut Lab, args: &Args) -> Outcome {
    let deadline = args.deadline();
    let (ab_r, ab_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // A -> B
    let (ba_r, ba_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // B -> A
    let cap =
        fcntl(&ab_w, FcntlArg::F_GETPIPE_SZ).or_die("fcntl(F_GETPIPE_SZ)") as usize; // what a pipe holds
                                                                                     // Tests only: a message that fits in the pipe, so no writer has to wait.
    let len =
        if proclab::test_removes("small_pipe_message") { cap / 2 } else { 2 * cap };
    let msg = vec![0x5au8; len]; // allocated before fork: the children only write it
    let mut buf = vec![0u8; len];
    say!(
        "pipe capacity {cap} bytes; A and B each write {len} bytes before reading"
    );
    let t0 = clock::lab_ns();
    // ANCHOR: pipes
    let a = fork_pipe_child(&ab_w, &ba_r, &msg, &mut buf, false); // A: write all, then read
    let b = fork_pipe_child(&ba_w, &ab_r, &msg, &mut buf, false); // B: the same
    drop((ab_w, ba_w)); // we keep only the read ends, to count what waits in each pipe
    let seen = procfacts::poll_until(deadline, || {
        let wa =
            procfacts::wchan(a.as_raw()).filter(|w| w.contains("pipe_write"))?;
        let wb =
            procfacts::wchan(b.as_raw()).filter(|w| w.contains("pipe_write"))?;
        let full = queued(&ab_r) as usize == cap && queued(&ba_r) as usize == cap;
        let asleep = procfacts::state(a.as_raw()) == Some('S')
            && procfacts::state(b.as_raw()) == Some('S');
        (full && asleep).then(|| (wa, wb, since(t0)))
    });
    // ANCHOR_END: pipes
    let cycle = seen.is_some();
    if let Some((wa, wb, after)) = &seen {
        let (qa, qb) = (queued(&ab_r), queued(&ba_r));
        report::show_pipes_blocked(lab, cap, [(a, wa, qa), (b, wb, qb)], *after);
    }
    lab.show_tree(getpid());
    lab.check(
        "pipes_blocked",
        cycle,
        "pipes: both writers asleep (S) in pipe_write with both pipes full: each waits for the other to read",
    );
    report::hold(
        lab,
        args.hold_ms,
        a,
        "`cat /proc/PID/wchan` or `ls -l /proc/PID/fd`",
    );
    let _ = kill(a, Signal::SIGKILL); // nothing will ever read: end both
    let _ = kill(b, Signal::SIGKILL);
    let sa = Status(waitpid(a, None));
    let sb = Status(waitpid(b, None));
    cleanup::forget(a);
    cleanup::forget(b);
    let took = since(t0);
    report::show_pipes_broken(lab, [&sa, &sb], took);
    let broken = lab.check(
        "pipes_broken",
        sa.signal() == Some(Signal::SIGKILL)
            && sb.signal() == Some(Signal::SIGKILL)
            && took <= args.ends_by(),
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
    let ([sa, sb], fired) = reap_all([a, b], deadline);
    let t = sw_fix.elapsed();
    report::show_pipes_fix(lab, len, [&sa, &sb], fired, t);
    let fix_ok = lab.check(
        "pipes_fix_finished",
        sa.code() == Some(0) && sb.code() == Some(0) && !fired,
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
