//! Scenario 2: four fixes of the two-thread deadlock, each taking away one of the
//! conditions a deadlock needs, run to the end in a worker from the state the deadlock
//! starts from (each thread at its first lock); and the livelock that try_lock risks.

use crate::rendezvous::Rendezvous;
use crate::wire::{self, Done, Msg};
use crate::worker::{self, Role};
use crate::Args;
use parking_lot::{Mutex, MutexGuard};
use proclab::measure::fmt_duration;
use proclab::{bytes, check, observe, say, Lab, Stopwatch};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// What the two threads of a fix share: two counters, each behind its own lock, the same
/// two behind one lock (`both`), where they start, and what the threads count.
/// `unfixed` (tests only) takes the fix away: the deadlock is then certain.
struct Pair {
    a: Mutex<u64>,
    b: Mutex<u64>,
    both: Mutex<(u64, u64)>,
    meet: Rendezvous,
    start: Barrier,
    unfixed: bool,
    retries: AtomicU64,
    successes: AtomicU64,
}

type Lock = Mutex<u64>;

/// Rounds of the lockstep run (every round fails by construction).
const LOCKSTEP_ROUNDS: u64 = 200;

// ANCHOR: fix_order
fn order(p: &Pair, me: usize, k: u64) {
    let mut order = [&p.a, &p.b]; // everyone takes A first, then B:
    if p.unfixed && me == 1 {
        order.reverse(); // (tests only: t2 takes B first, as in the deadlock)
    }
    for round in 0..k {
        // Round 0 starts as the deadlock does: each thread at its first lock.
        let mut first = p.meet.first(order[0], me, round);
        let mut second = order[1].lock(); // no cycle can form
        *first += 1;
        *second += 1;
    }
}
// ANCHOR_END: fix_order

/// A pause of 1 to 50 µs, different for each try (`jitter` is a random pattern).
fn back_off(jitter: &[u8], tries: usize) {
    let us = 1 + jitter[tries % jitter.len()] as u64 % 50;
    std::thread::sleep(Duration::from_micros(us));
}

// ANCHOR: fix_trylock
fn trylock(p: &Pair, [first, second]: [&Lock; 2], me: usize, k: u64, j: &[u8]) {
    let (mut done, mut tries) = (0, 0);
    while done < k {
        // Try 0: both hold their first lock, as in the deadlock.
        let mut g1 = p.meet.first(first, me, tries as u64);
        tries += 1;
        let got = match p.unfixed {
            true => Some(second.lock()), // tests only: wait, as in the deadlock
            false => second.try_lock(),
        };
        match got {
            Some(mut g2) => {
                *g1 += 1;
                *g2 += 1;
                done += 1;
            }
            None => {
                // Give back what we hold: no hold and wait.
                MutexGuard::unlock_fair(g1);
                p.retries.fetch_add(1, Relaxed);
                back_off(j, tries); // a random pause breaks the symmetry
            }
        }
    }
}
// ANCHOR_END: fix_trylock

// ANCHOR: lockstep
fn lockstep(p: &Pair, [first, second]: [&Lock; 2]) {
    for _ in 0..LOCKSTEP_ROUNDS {
        let g1 = first.lock();
        p.start.wait(); // both hold their first lock (perfectly in step)
        let got = second.try_lock().map(|mut g2| *g2 += 1).is_some();
        p.successes.fetch_add(got as u64, Relaxed);
        p.start.wait(); // both have tried before either lets go
        drop(g1); // release and retry, both after the same back-off
        p.retries.fetch_add(!got as u64, Relaxed);
    }
}
// ANCHOR_END: lockstep

// ANCHOR: fix_timed
fn timed(p: &Pair, [first, second]: [&Lock; 2], k: u64, me: usize, j: &[u8]) {
    let patience = Duration::from_millis(if me == 0 { 10 } else { 1000 });
    let (mut done, mut tries) = (0, 0);
    while done < k {
        // Try 0: both hold their first lock: a certain cycle.
        let mut g1 = p.meet.first(first, me, tries as u64);
        tries += 1;
        let got = match p.unfixed {
            true => Some(second.lock()), // tests only: no time limit
            false => second.try_lock_for(patience),
        };
        match got {
            None => {
                MutexGuard::unlock_fair(g1); // gave up: hand A to the waiter
                p.retries.fetch_add(1, Relaxed);
                back_off(j, tries);
            }
            Some(mut g2) => {
                *g1 += 1;
                *g2 += 1;
                done += 1;
            }
        }
    }
}
// ANCHOR_END: fix_timed

// ANCHOR: fix_one
fn one_lock(p: &Pair, me: usize, k: u64) {
    for round in 0..k {
        // One lock guards both counters: nothing to wait for while holding it.
        let mut g = p.meet.first(&p.both, me, round);
        g.0 += 1;
        g.1 += 1;
    }
}
// ANCHOR_END: fix_one

/// In the worker: two threads run the fix `role`, `k` rounds each; then its report.
pub fn work(role: Role, k: u64) {
    let p = Arc::new(Pair {
        a: Mutex::new(0),
        b: Mutex::new(0),
        both: Mutex::new((0, 0)),
        meet: Rendezvous::new(2),
        start: Barrier::new(2),
        unfixed: role.removal_switch().is_some_and(proclab::test_removes),
        retries: AtomicU64::new(0),
        successes: AtomicU64::new(0),
    });
    let sw = Stopwatch::start();
    let threads: Vec<_> = (0..2)
        .map(|me| {
            let p = p.clone();
            let jitter = bytes::pattern(4096, me as u64 + 1); // the back-off pauses
            let thread = std::thread::Builder::new().name(format!("t{}", me + 1));
            let spawned = thread.spawn(move || {
                // t1 takes A first, t2 takes B first: the order that deadlocks.
                let ab = if me == 0 { [&p.a, &p.b] } else { [&p.b, &p.a] };
                match role {
                    Role::FixOrder => order(&p, me, k),
                    Role::FixJitter => trylock(&p, ab, me, k, &jitter),
                    Role::FixLockstep => lockstep(&p, ab),
                    Role::FixTimed => timed(&p, ab, k, me, &jitter),
                    // Tests only: A and B again, in the deadlock's two orders.
                    Role::FixOneLock if p.unfixed => order(&p, me, k),
                    Role::FixOneLock => one_lock(&p, me, k),
                    _ => unreachable!("not a fix of two threads"),
                }
            });
            spawned.expect("spawn thread")
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let (a, b) = match role {
        Role::FixOneLock if !p.unfixed => *p.both.lock(),
        _ => (*p.a.lock(), *p.b.lock()),
    };
    let [retries, successes] = [&p.retries, &p.successes].map(|c| c.load(Relaxed));
    let gave_up = if role == Role::FixTimed { retries } else { 0 }; // t1's timeouts
    let rounds = if role == Role::FixLockstep { LOCKSTEP_ROUNDS } else { k };
    let summary = match role {
        Role::FixLockstep => format!("{successes} of {rounds} rounds x 2 threads got both locks; {retries} try_locks failed"),
        Role::FixTimed => format!("A = {a}, B = {b}; t1 gave up {gave_up} time(s) after waiting 10 ms for B, each time handing A to t2"),
        Role::FixJitter => format!("A = {a}, B = {b}; {retries} failed try_locks, each followed by release and back-off"),
        _ => format!("A = {a}, B = {b}"),
    };
    let elapsed_us = sw.elapsed().as_micros() as u64;
    let done = Done {
        a,
        b,
        elapsed_us,
        retries,
        gave_up,
        rounds,
        successes,
        summary,
        meals: 0,
    };
    wire::send(&Msg::Done(done));
}

/// In the lab: each fix in a worker, to its end or to the deadline. True if all held.
pub fn run(lab: &mut Lab, args: &Args) -> bool {
    let k = args.iters as u64;
    let exact =
        |d: &Option<Done>| d.as_ref().is_some_and(|d| d.a == 2 * k && d.b == 2 * k);
    say!("mutual exclusion, hold and wait, no preemption, circular wait: remove any one and no deadlock can form");
    let order = worker::finish(lab, Role::FixOrder, args);
    let ok1 = check!(lab, "fix_order_finished", exact(&order),
        "no circular wait: both threads take A before B, from where the deadlock starts; {k} rounds each finished, counters exact");
    // A demonstration, not a check: two barriers a round make every try_lock fail.
    if let Some(d) = worker::finish(lab, Role::FixLockstep, args) {
        let (rounds, successes, retries) = (d.rounds, d.successes, d.retries);
        observe!(lab, "livelock",
            "livelock, forced: try_lock + release in perfect lockstep made {successes} progress in {rounds} rounds although both kept trying",
            rounds, successes, retries);
    }
    let jitter = worker::finish(lab, Role::FixJitter, args);
    let retried = jitter.as_ref().is_some_and(|d| d.retries >= 1);
    let ok2 = check!(lab, "fix_trylock_finished", exact(&jitter) && retried,
        "no hold-and-wait: try_lock, release and a random back-off; {k} rounds each finished, counters exact");
    let timed = worker::finish(lab, Role::FixTimed, args);
    let gave_up = timed.as_ref().map_or(0, |d| d.gave_up);
    let ok3 = check!(lab, "fix_timed_finished", exact(&timed) && gave_up >= 1,
        "no (endless) wait: a timed lock gave up {gave_up} time(s) inside a certain circular wait, released, and all {k} rounds finished");
    let one = worker::finish(lab, Role::FixOneLock, args);
    let ok4 = check!(lab, "fix_one_lock_finished", exact(&one),
        "no second lock: one mutex guards both counters, both threads at it from the start; {k} rounds each finished, counters exact");
    let row = |cond: &str, fix: Role, d: &Option<Done>| {
        let us = |d: &Done| fmt_duration(Duration::from_micros(d.elapsed_us));
        let time = d.as_ref().map_or("did not finish".into(), us);
        let retries = d.as_ref().map_or(0, |d| d.retries).to_string();
        vec![cond.to_string(), fix.title().to_string(), time, retries]
    };
    let rows = [
        row("circular wait", Role::FixOrder, &order),
        row("hold and wait", Role::FixJitter, &jitter),
        row("no preemption", Role::FixTimed, &timed),
        row("a second lock to wait for", Role::FixOneLock, &one),
    ];
    lab.table("fixes", &["takes away", "fix", "time", "retries"], &rows);
    ok1 && ok2 && ok3 && ok4
}
