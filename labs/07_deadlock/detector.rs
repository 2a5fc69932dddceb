//! Scenarios 1 and 5, a second opinion: the same ring on parking_lot's mutex, in a second
//! worker, and parking_lot's own deadlock detector asked about it. Its answer must name
//! the ring's threads; "no deadlock", or no answer by the deadline, fails the check.

use crate::threads::park_forever;
use crate::waitfor::WaitFor;
use crate::wire::{self, Msg, Stuck};
use crate::worker::{self, Role};
use crate::Args;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use proclab::measure::fmt_duration;
use proclab::{check, cleanup, observe, say, Lab, Status, Stopwatch, Watchdog};
use std::sync::Arc;
use std::time::Duration;

/// In the worker, once its graph showed the cycle: ask parking_lot until it names one,
/// saying every 20 answers that it still finds none. Never returns.
pub fn ask(graph: Arc<WaitFor>) -> ! {
    let sw = Stopwatch::start();
    let after_us = || sw.elapsed().as_micros() as u64;
    let mut no_deadlock = 0;
    // ANCHOR: parking_lot
    let cycles = loop {
        // parking_lot's own graph of the threads parked on its locks.
        let found = parking_lot::deadlock::check_deadlock();
        if !found.is_empty() {
            break found;
        }
        no_deadlock += 1; // none (yet: a thread may still be on its way to park)
        if no_deadlock % 20 == 0 {
            let (cycles, threads, after_us) = (0, vec![], after_us());
            wire::send(&Msg::ParkingLot { cycles, threads, after_us, no_deadlock });
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // ANCHOR_END: parking_lot
    let after_us = after_us();
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
    let (threads, cycles) = (stuck.collect(), cycles.len());
    wire::send(&Msg::ParkingLot { cycles, threads, after_us, no_deadlock });
    park_forever() // the lab kills this process: that is the only way out
}

/// In the lab: the ring of `role` again, on parking_lot's mutex, and its detector's
/// answer. True if it named the very threads of the ring's cycle.
pub fn run(lab: &mut Lab, args: &Args, name: &str, role: Role) -> bool {
    let role = match role {
        Role::Pair => Role::PairParkingLot,
        _ => Role::PhilosophersParkingLot,
    };
    let mut w = worker::spawn(role, args);
    let pid = w.pid;
    say!("worker {pid} runs the same ring on parking_lot::Mutex, and asks its detector");
    let dog = Watchdog::arm(args.deadline(), move || {
        let _ = kill(pid, Signal::SIGKILL); // no answer by the deadline
    });
    let (mut want, mut answer, mut no_deadlock) = (vec![], None, 0);
    while let Some(msg) = w.next() {
        match msg {
            Msg::Cycle { edges, .. } => {
                want = edges.into_iter().map(|e| e.thread).collect()
            }
            Msg::ParkingLot { cycles: 0, no_deadlock: n, .. } => no_deadlock = n,
            Msg::ParkingLot { cycles, threads, after_us, no_deadlock: n } => {
                (answer, no_deadlock) = (Some((cycles, threads, after_us)), n);
                break;
            }
            _ => {}
        }
    }
    let fired = dog.disarm();
    let _ = kill(pid, Signal::SIGKILL);
    let status = Status(waitpid(pid, None));
    cleanup::forget(pid);
    let mut found = Vec::new();
    if let Some((cycles, threads, after_us)) = answer {
        let at = |t: &Stuck| {
            format!("{} at {}", t.thread, t.frames.first().map_or("?", |f| f))
        };
        let at = threads.iter().map(at).collect::<Vec<_>>().join("\n      ");
        found = threads.iter().map(|t| t.thread.clone()).collect();
        let (after, n) =
            (fmt_duration(Duration::from_micros(after_us)), found.len());
        observe!(lab, "parking_lot",
            "parking_lot::deadlock::check_deadlock() answered {after} after its graph closed: {cycles} cycle(s) of {n} threads; their backtraces show where each waits:\n      {at}",
            scenario = name, answered = true, cycles, threads, after_us, no_deadlock, status);
    } else {
        let said = match no_deadlock {
            0 => "had not answered".to_string(),
            n => format!("answered \"no deadlock\" {n} times"),
        };
        observe!(lab, "parking_lot",
            "parking_lot::deadlock::check_deadlock() {said} by the deadline; worker {pid}: {status}",
            scenario = name, answered = false, no_deadlock, watchdog_fired = fired, status);
    }
    let same = !want.is_empty()
        && found.len() == want.len()
        && want.iter().all(|n| found.contains(n));
    check!(
        lab,
        &format!("{name}_parking_lot_agrees"),
        same,
        "{name}: parking_lot's own detector found the same threads deadlocked"
    )
}
