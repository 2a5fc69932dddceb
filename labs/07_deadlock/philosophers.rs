//! Scenario 5: N dining philosophers each take the left fork, then the right one: a ring
//! of N waiters (`threads::ring` with N threads). The fix: take the lower-numbered fork
//! first, tried from the state the ring starts from (each at its first fork).

use crate::rendezvous::Rendezvous;
use crate::wire::{self, Done, Msg};
use crate::worker::{self, Role};
use crate::{threads, Args, Row};
use parking_lot::Mutex;
use proclab::{check, Lab, Stopwatch};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// In the worker: `n` philosophers eat `k` meals each, the lower-numbered fork first.
pub fn fix(n: usize, k: u64) {
    let forks: Arc<Vec<Mutex<u64>>> =
        Arc::new((0..n).map(|_| Mutex::new(0)).collect());
    let (meals, meet) = (Arc::new(AtomicU64::new(0)), Arc::new(Rendezvous::new(n)));
    // Tests only: every philosopher takes the left fork first, as in the ring.
    let left_first =
        Role::FixPhilosophers.removal_switch().is_some_and(proclab::test_removes);
    let sw = Stopwatch::start();
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (forks, meals, meet) = (forks.clone(), meals.clone(), meet.clone());
            std::thread::spawn(move || {
                // ANCHOR: fix_philosophers
                let (left, right) = (i, (i + 1) % n);
                let (low, high) = (left.min(right), left.max(right)); // the last turns
                let (low, high) =
                    if left_first { (left, right) } else { (low, high) };
                for round in 0..k {
                    // Round 0: each at its first fork, holding it or waiting for it.
                    let mut f1 = meet.first(&forks[low], i, round);
                    let mut f2 = forks[high].lock();
                    *f1 += 1;
                    *f2 += 1;
                    meals.fetch_add(1, Relaxed);
                }
                // ANCHOR_END: fix_philosophers
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let meals = meals.load(Relaxed);
    let elapsed_us = sw.elapsed().as_micros() as u64;
    let summary = format!("{meals} meals by {n} philosophers");
    wire::send(&Msg::Done(Done { meals, elapsed_us, summary, ..Done::default() }));
}

/// In the lab: the ring of philosophers, seen and broken; then the fix, to its end.
pub fn run(lab: &mut Lab, args: &Args) -> Row {
    let mut row = threads::run(lab, args, Role::Philosophers);
    let done = worker::finish(lab, Role::FixPhilosophers, args);
    let meals = done.as_ref().map_or(0, |d| d.meals);
    let want = args.philosophers as u64 * args.iters as u64;
    row.fix = Role::FixPhilosophers.title();
    row.fix_ok = check!(lab, "philosophers_fix_finished",
        done.is_some() && meals == want,
        "taking the lower-numbered fork first, from where the ring starts (each at its first fork): {meals} of {want} meals eaten, no deadlock");
    row
}
