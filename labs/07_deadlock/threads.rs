//! Scenarios 1 and 5: threads that each hold one lock and wait for the next one's, in a
//! worker process. The lab sees the cycle from inside (the worker's wait-for graph, then
//! parking_lot's detector) and from outside (/proc), and breaks it by killing the worker.

use crate::procview::{snapshot, Task};
use crate::waitfor::WaitFor;
use crate::watch::{hold, since};
use crate::wire::{self, Msg, Stuck};
use crate::worker::{self, Role};
use crate::{Args, Row};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use parking_lot::Mutex;
use proclab::measure::fmt_duration;
use proclab::{check, cleanup, clock, observe, procfacts, say};
use proclab::{Deadline, Lab, Status, Stopwatch, Watchdog};
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// In the worker: thread i takes lock i, waits until every thread holds its first lock,
/// then asks for lock i + 1 (t1 A then B, t2 B then A; philosopher i fork i, then i + 1).
/// The worker reports the cycle, waits for "go", asks parking_lot. It never returns.
pub fn ring(threads: &[String], locks: &[String]) -> ! {
    let n = threads.len();
    let mutexes: Arc<Vec<Mutex<()>>> =
        Arc::new((0..n).map(|_| Mutex::new(())).collect());
    let graph = Arc::new(WaitFor::default());
    let all_hold = Arc::new(Barrier::new(n));
    // Tests only: every thread takes the lower-numbered lock first: no cycle can form.
    let same_order = proclab::test_removes("same_order");
    for (i, name) in threads.iter().cloned().enumerate() {
        let (mutexes, graph) = (mutexes.clone(), graph.clone());
        let all_hold = all_hold.clone();
        let (mut first, mut second) = (i, (i + 1) % n);
        if same_order && first > second {
            (first, second) = (second, first);
        }
        let lock = locks[first].clone();
        let thread = std::thread::Builder::new().name(name.clone());
        let spawned = thread.spawn(move || {
            // ANCHOR: ring
            let me = graph.join(&name);
            graph.wants(me, first);
            let _held = mutexes[first].lock();
            graph.got(me, first);
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            wire::send(&Msg::Hold { thread: name, tid, lock });
            all_hold.wait(); // every thread holds its first lock: the cycle is certain
            graph.wants(me, second);
            // Blocks for ever: its holder waits for us.
            let _never = mutexes[second].lock();
            // ANCHOR_END: ring
            unreachable!("a thread got out of the deadlock");
        });
        spawned.expect("spawn thread");
    }
    // The detector: the worker's own wait-for graph first, then parking_lot's.
    let (hops, formed) = loop {
        match graph.cycle() {
            Some(c) if c.0.len() == n => break c,
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    };
    let detected_after_us = formed.elapsed().as_micros() as u64;
    let edges = graph.named(&hops, locks);
    wire::send(&Msg::Cycle { edges, detected_after_us });
    let _ = std::io::stdin().read_line(&mut String::new()); // the lab looks at /proc
    let sw = Stopwatch::start();
    // ANCHOR: parking_lot
    let cycles = loop {
        // parking_lot's own graph of the threads parked on its locks.
        let found = parking_lot::deadlock::check_deadlock();
        if !found.is_empty() {
            break found;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // ANCHOR_END: parking_lot
    let after_us = sw.elapsed().as_micros() as u64;
    // Each thread by name, with the frames of the lab's own code in its backtrace.
    let stuck = cycles.iter().flatten().map(|t| {
        let symbols = t.backtrace().frames().iter().flat_map(|f| f.symbols());
        let ours = symbols.filter_map(|s| {
            let name = format!("{:#}", s.name()?);
            let file = s.filename().and_then(|p| p.file_name());
            let file = file.map(|f| f.to_string_lossy()).unwrap_or_default();
            let at = format!("{name} ({file}:{})", s.lineno().unwrap_or(0));
            name.starts_with("deadlock::").then_some(at)
        });
        Stuck { thread: graph.name_of(t.thread_id()), frames: ours.collect() }
    });
    let threads = stuck.collect();
    wire::send(&Msg::ParkingLot { cycles: cycles.len(), threads, after_us });
    loop {
        std::thread::park(); // the lab kills this process: that is the only way out
    }
}

/// In the lab: make the deadlock of `role` in a worker, see it from inside and from
/// outside, and break it.
pub fn run(lab: &mut Lab, args: &Args, role: Role) -> Row {
    let name = if role == Role::Pair { "threads" } else { "philosophers" };
    let deadline = args.deadline();
    let t0 = clock::lab_ns();
    let mut w = worker::spawn(role, args);
    let pid = w.pid;
    say!("worker {pid} runs the threads ({role:?}); the watchdog kills it at the deadline");
    // ANCHOR: watch
    let end = Deadline::after(deadline); // lab time: a --step pause does not count
    let dog = Watchdog::arm(deadline, move || {
        let _ = kill(pid, Signal::SIGKILL); // not detected in time: break it anyway
    });
    let (mut cycle, mut answer, mut tasks) = (None, None, (vec![], String::new()));
    while let Some(msg) = w.next() {
        match msg {
            Msg::Hold { thread, tid, lock } => {
                say!("worker {pid}: {thread} (tid {tid}) holds {lock}")
            }
            Msg::Cycle { edges, detected_after_us } => {
                let names: Vec<String> =
                    edges.iter().map(|e| e.thread.clone()).collect();
                tasks = snapshot(pid, &names, end.remaining()); // seen from outside
                cycle = Some((edges, detected_after_us));
                w.go(); // now the worker may ask parking_lot too
            }
            Msg::ParkingLot { cycles, threads, after_us } => {
                answer = Some((cycles, threads, after_us));
                break;
            }
            Msg::Done(_) => {}
        }
    }
    let fired = dog.disarm();
    // ANCHOR_END: watch
    let (tasks, stack) = tasks;
    let (edges, us) = cycle.clone().unwrap_or_default();
    let want: Vec<&str> = edges.iter().map(|e| e.thread.as_str()).collect();
    if cycle.is_some() {
        let hop = |e: &wire::Edge| {
            let (t, h, w, b) = (&e.thread, &e.holds, &e.waits_for, &e.held_by);
            format!("{t} holds {h}, waits for {w} (held by {b})")
        };
        let chain = edges.iter().map(hop).collect::<Vec<_>>().join("\n      -> ");
        let (after, len) = (fmt_duration(Duration::from_micros(us)), edges.len());
        observe!(lab, "cycle",
            "wait-for graph of worker {pid}, {after} after the last thread asked:\n      {chain}\n      -> back to the start: a cycle of {len}",
            scenario = name, pid = pid.as_raw(), role = "worker", edges, detected_after_us = us);
    }
    // The graph closes: every holder is itself one of the cycle's waiters.
    let closes =
        !want.is_empty() && edges.iter().all(|e| want.contains(&&*e.held_by));
    // parking_lot looked after the /proc snapshot: it wakes each deadlocked thread for a
    // moment to take its backtrace. Only an answer counts as agreement.
    let mut agrees = None;
    if let Some((cycles, threads, after_us)) = answer {
        let found: Vec<&str> = threads.iter().map(|t| t.thread.as_str()).collect();
        let at = |t: &Stuck| {
            format!("{} at {}", t.thread, t.frames.first().map_or("?", |f| f))
        };
        let at = threads.iter().map(at).collect::<Vec<_>>().join("\n      ");
        let (after, n) =
            (fmt_duration(Duration::from_micros(after_us)), found.len());
        observe!(lab, "parking_lot",
            "parking_lot::deadlock::check_deadlock() answered {after} later: {cycles} cycle(s) of {n} threads; their backtraces show where each waits:\n      {at}",
            scenario = name, answered = true, cycles, threads, after_us);
        let same =
            found.len() == want.len() && want.iter().all(|n| found.contains(n));
        let ok =
            check!(lab, &format!("{name}_parking_lot_agrees"), same,
            "{name}: parking_lot's own detector found the same threads deadlocked");
        agrees = Some(ok);
    } else if cycle.is_some() {
        observe!(lab, "parking_lot",
            "parking_lot's detector: not consulted (it had not answered by the deadline, still taking backtraces); the verdict rests on the wait-for graph and /proc",
            scenario = name, answered = false);
    }
    let rows: Vec<Vec<String>> = tasks.iter().map(Task::cells).collect();
    lab.table("tasks", &["tid", "thread", "state", "wchan"], &rows);
    let top: Vec<&str> = stack.lines().take(5).collect();
    if top.len() > 1 {
        let (first, shown) = (want.first().unwrap_or(&"?"), top.join("\n      "));
        observe!(
            lab,
            "kernel_stack",
            "the kernel side of {first}, {shown}",
            pid = pid.as_raw(),
            stack = top
        );
    }
    // Seen from outside: every thread of the cycle asleep in the kernel, on a futex.
    let on_futex = |n: &&str| {
        tasks
            .iter()
            .any(|t| t.name == *n && t.state == 'S' && t.wchan.contains("futex"))
    };
    let seen = closes && want.iter().all(on_futex);
    check!(lab, &format!("{name}_cycle_seen"), seen,
        "{name}: the circular wait was seen in the wait-for graph, and every thread in it sleeps on a futex");
    hold(lab, args.hold_ms, pid,
        "`ps -L -o pid,tid,stat,wchan:32,comm -p PID` or `gdb -p PID -batch -ex 'thread apply all bt'`");
    // ANCHOR: break
    // No thread can be made to give a mutex back: end the whole process.
    let _ = kill(pid, Signal::SIGKILL);
    let status = Status(waitpid(pid, None));
    cleanup::forget(pid);
    // ANCHOR_END: break
    let took = since(t0);
    let (t, note) =
        (fmt_duration(took), if fired { " (the watchdog fired)" } else { "" });
    observe!(lab, "broken",
        "broken: SIGKILL to worker {pid}, waitpid: {status}; {t} from its start to reaped{note}",
        scenario = name, pid = pid.as_raw(), sent = "SIGKILL", status, watchdog_fired = fired,
        ended_after_ms = took.as_millis() as u64, deadline_ms = args.deadline_ms,
        hold_ms = args.hold_ms);
    let killed = status.signal() == Some(Signal::SIGKILL);
    let gone = !procfacts::exists(pid.as_raw());
    let broken = check!(lab, &format!("{name}_broken"),
        killed && cycle.is_some() && took <= args.ends_by() && gone,
        "{name}: detected before the deadline, broken and reaped within deadline + 1 s (+ --hold-ms)");
    let detected = cycle.map(|c| Duration::from_micros(c.1));
    let cycle = seen && agrees != Some(false);
    Row { scenario: name, cycle, detected, broken, fix: "", fix_ok: false }
}
