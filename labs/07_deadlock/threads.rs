//! Scenarios 1 and 5: threads that each hold one lock and wait for the next one's, in a
//! worker process. The lab sees the cycle from inside (the worker's wait-for graph) and
//! from the kernel (the futex each thread sleeps on is the mutex it waits for), and
//! breaks it by killing the worker; then asks parking_lot's detector (detector.rs).

use crate::procview::{kernel_stack, snapshot, Task};
use crate::waitfor::WaitFor;
use crate::watch::{hold, since};
use crate::wire::{self, Edge, Held, Msg};
use crate::worker::{self, Role};
use crate::{detector, Args, Row};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use proclab::measure::fmt_duration;
use proclab::{check, cleanup, clock, observe, procfacts, say};
use proclab::{Deadline, Lab, State, Status, Watchdog};
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// A mutex of the ring: std's, whose waiters sleep in the kernel on a word inside it,
/// or parking_lot's, whose detector sees its waiters.
pub trait RingLock: Default + Send + Sync + 'static {
    fn hold(&self) -> impl Sized + '_;
}

impl RingLock for std::sync::Mutex<()> {
    fn hold(&self) -> impl Sized + '_ {
        self.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RingLock for parking_lot::Mutex<()> {
    fn hold(&self) -> impl Sized + '_ {
        self.lock()
    }
}

/// Sleep for ever, without asking for any lock (the lab kills this process).
pub fn park_forever() -> ! {
    loop {
        std::thread::park();
    }
}

/// In the worker: thread i takes lock i, waits until every thread holds its first lock,
/// then asks for lock i + 1 (t1 A then B, t2 B then A; philosopher i fork i, then i + 1).
/// Returns once the worker's own graph shows the cycle, and has reported it.
pub fn ring<M: RingLock>(threads: &[String], locks: &[String]) -> Arc<WaitFor> {
    let n = threads.len();
    let mutexes: Arc<Vec<M>> = Arc::new((0..n).map(|_| M::default()).collect());
    let graph = Arc::new(WaitFor::default());
    let all_hold = Arc::new(Barrier::new(n));
    // Tests only: every thread takes the lower-numbered lock first: no cycle can form.
    let same_order = proclab::test_removes("same_order");
    // Tests only: each thread sleeps instead of asking for its second lock.
    let park = proclab::test_removes("park_instead_of_lock");
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
            let _held = mutexes[first].hold();
            graph.got(me, first);
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            let at = std::ptr::from_ref(&mutexes[first]) as u64; // where it lives
            let size = size_of::<M>() as u64;
            wire::send(&Msg::Hold(Held { thread: name, tid, lock, at, size }));
            all_hold.wait(); // every thread holds its first lock: the cycle is certain
            graph.wants(me, second);
            if park {
                park_forever(); // tests only: asleep, but waiting for no lock
            }
            // Blocks for ever: its holder waits for us.
            let _never = mutexes[second].hold();
            // ANCHOR_END: ring
            unreachable!("a thread got out of the deadlock");
        });
        spawned.expect("spawn thread");
    }
    // The detector: follow the worker's own wait-for graph until it closes.
    let (hops, formed) = loop {
        match graph.cycle() {
            Some(c) if c.0.len() == n => break c,
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    };
    let detected_after_us = formed.elapsed().as_micros() as u64;
    let edges = graph.named(&hops, locks);
    wire::send(&Msg::Cycle { edges, detected_after_us });
    graph
}

/// One thread of the cycle as the kernel shows it: the futex it sleeps on, the lock that
/// address lies in (from the worker's `Held` reports) and that lock's holder.
#[derive(serde::Serialize)]
struct FutexWait {
    thread: String,
    tid: i32,
    state: State,
    futex: Option<String>,
    lock: Option<String>,
    held_by: Option<String>,
}

// ANCHOR: futex
/// The kernel's side of each edge: what `e.thread` sleeps on, and whose it is.
fn futex_waits(cycle: &[Edge], held: &[Held], ts: &[Task]) -> Vec<FutexWait> {
    let wait = |e: &Edge| {
        let h = held.iter().find(|h| h.thread == e.thread);
        let t = ts.iter().find(|t| Some(t.tid) == h.map(|h| h.tid));
        // What it sleeps on (/proc/PID/task/TID/syscall), the mutex that
        // word is part of, and the thread that holds that mutex.
        let addr = t.and_then(|t| t.futex);
        let owner = held.iter().find(|h| addr.is_some_and(|a| h.contains(a)));
        FutexWait {
            thread: e.thread.clone(),
            tid: t.map_or(0, |t| t.tid),
            state: State(t.map_or('?', |t| t.state)),
            futex: addr.map(|a| format!("{a:#x}")),
            lock: owner.map(|h| h.lock.clone()),
            held_by: owner.map(|h| h.thread.clone()),
        }
    };
    cycle.iter().map(wait).collect()
}
// ANCHOR_END: futex

/// True when the kernel shows `w` asleep on the lock the edge says, held by its holder.
fn ties(e: &Edge, w: &FutexWait) -> bool {
    let same = |a: &Option<String>, b: &String| a.as_ref() == Some(b);
    w.state.0 == 'S' && same(&w.lock, &e.waits_for) && same(&w.held_by, &e.held_by)
}

/// In the lab: make the deadlock of `role` in a worker, see it from inside and from the
/// kernel, and break it; then ask parking_lot about the same ring.
pub fn run(lab: &mut Lab, args: &Args, role: Role) -> Row {
    let name = if role == Role::Pair { "threads" } else { "philosophers" };
    let deadline = args.deadline();
    let t0 = clock::lab_ns();
    let mut w = worker::spawn(role, args);
    let pid = w.pid;
    say!("worker {pid} runs the ring on std::sync::Mutex; the watchdog kills it at the deadline");
    // ANCHOR: watch
    let end = Deadline::after(deadline); // lab time: a --step pause does not count
    let dog = Watchdog::arm(deadline, move || {
        let _ = kill(pid, Signal::SIGKILL); // not detected in time: break it anyway
    });
    let (mut held, mut cycle) = (Vec::<Held>::new(), None);
    while let Some(msg) = w.next() {
        match msg {
            Msg::Hold(h) => {
                say!("worker {pid}: {} (tid {}) holds {}", h.thread, h.tid, h.lock);
                held.push(h);
            }
            Msg::Cycle { edges, detected_after_us } => {
                cycle = Some((edges, detected_after_us));
                break;
            }
            _ => {}
        }
    }
    let fired = dog.disarm();
    // Seen from the kernel: until each sleeps on the lock the graph says (bounded).
    let (edges, us) = cycle.clone().unwrap_or_default();
    let tasks = snapshot(pid, end.remaining(), |t| {
        let waits = futex_waits(&edges, &held, t);
        cycle.is_some() && edges.iter().zip(&waits).all(|(e, w)| ties(e, w))
    });
    // ANCHOR_END: watch
    let first = edges.first().map_or("", |e| e.thread.as_str());
    let tid = held.iter().find(|h| h.thread == first).map_or(0, |h| h.tid);
    let stack = kernel_stack(pid, tid);
    if cycle.is_some() {
        let hop = |e: &Edge| {
            let (t, h, w, b) = (&e.thread, &e.holds, &e.waits_for, &e.held_by);
            format!("{t} holds {h}, waits for {w} (held by {b})")
        };
        let chain = edges.iter().map(hop).collect::<Vec<_>>().join("\n      -> ");
        let (after, len) = (fmt_duration(Duration::from_micros(us)), edges.len());
        observe!(lab, "cycle",
            "wait-for graph of worker {pid}, {after} after the last thread asked:\n      {chain}\n      -> back to the start: a cycle of {len}",
            scenario = name, pid = pid.as_raw(), role = "worker", edges, detected_after_us = us);
    }
    let rows: Vec<Vec<String>> = tasks.iter().map(Task::cells).collect();
    lab.table("tasks", &["tid", "thread", "state", "wchan", "futex"], &rows);
    let top: Vec<&str> = stack.lines().take(5).collect();
    if top.len() > 1 {
        let (shown, pid) = (top.join("\n      "), pid.as_raw());
        observe!(
            lab,
            "kernel_stack",
            "the kernel side of {first}, {shown}",
            pid,
            stack = top
        );
    }
    let waits = futex_waits(&edges, &held, &tasks);
    if cycle.is_some() {
        let line = |w: &FutexWait| {
            let lock = match (&w.lock, &w.held_by) {
                (Some(l), Some(b)) => format!("mutex {l}, held by {b}"),
                _ => "no mutex of the ring".into(),
            };
            let on = w.futex.as_deref().unwrap_or("-");
            let (t, tid, state) = (&w.thread, w.tid, &w.state);
            format!("{t} (tid {tid}): {state}, futex wait on {on}: {lock}")
        };
        let shown = waits.iter().map(line).collect::<Vec<_>>().join("\n      ");
        observe!(lab, "futex_waits",
            "from the kernel, /proc/{pid}/task/TID/syscall of each thread of the cycle:\n      {shown}",
            scenario = name, pid = pid.as_raw(), waits);
    }
    let seen = cycle.is_some() && edges.iter().zip(&waits).all(|(e, w)| ties(e, w));
    check!(lab, &format!("{name}_cycle_seen"), seen,
        "{name}: the kernel shows each thread of the wait-for graph's cycle asleep on a futex inside the very mutex it waits for, held by the next thread");
    hold(lab, args.hold_ms, pid,
        "`ps -L -o pid,tid,stat,wchan:32,comm -p PID` or `cat /proc/PID/task/*/syscall`");
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
    let agrees = detector::run(lab, args, name, role);
    let detected = cycle.map(|c| Duration::from_micros(c.1));
    let cycle = seen && agrees;
    Row { scenario: name, cycle, detected, broken, fix: "", fix_ok: false }
}
