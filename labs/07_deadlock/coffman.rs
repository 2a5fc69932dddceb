//! Scenario 2: four fixes of the two-thread deadlock, each taking away one of the
//! conditions a deadlock needs, run to the end in a worker; and the livelock that
//! try_lock risks, forced.

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
/// two behind one lock (`both`), a barrier, and what the threads count.
struct Pair {
    a: Mutex<u64>,
    b: Mutex<u64>,
    both: Mutex<(u64, u64)>,
    start: Barrier,
    retries: AtomicU64,
    gave_up: AtomicU64,
    successes: AtomicU64,
}

type Lock = Mutex<u64>;

/// Rounds of the lockstep run (every round fails by construction).
const LOCKSTEP_ROUNDS: u64 = 200;

// ANCHOR: fix_order
fn order(p: &Pair, k: u64) {
    for _ in 0..k {
        let mut a = p.a.lock(); // everyone takes A first, then B:
        let mut b = p.b.lock(); // no cycle can form
        *a += 1;
        *b += 1;
    }
}
// ANCHOR_END: fix_order

/// A pause of 1 to 50 µs, different for each try (`jitter` is a random pattern).
fn back_off(jitter: &[u8], tries: usize) {
    let us = 1 + jitter[tries % jitter.len()] as u64 % 50;
    std::thread::sleep(Duration::from_micros(us));
}

// ANCHOR: fix_trylock
fn trylock(p: &Pair, [first, second]: [&Lock; 2], k: u64, jitter: &[u8]) {
    let (mut done, mut tries) = (0, 0);
    while done < k {
        let mut g1 = first.lock();
        if tries == 0 {
            p.start.wait(); // both hold their first lock, as in the deadlock
        }
        tries += 1;
        match second.try_lock() {
            Some(mut g2) => {
                *g1 += 1;
                *g2 += 1;
                done += 1;
            }
            None => {
                // Give back what we hold: no hold and wait.
                MutexGuard::unlock_fair(g1);
                p.retries.fetch_add(1, Relaxed);
                back_off(jitter, tries); // a random pause breaks the symmetry
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
        let mut g1 = first.lock();
        if tries == 0 {
            p.start.wait(); // both hold their first lock: a certain cycle
        }
        tries += 1;
        match second.try_lock_for(patience) {
            Some(mut g2) => {
                *g1 += 1;
                *g2 += 1;
                done += 1;
            }
            None => {
                MutexGuard::unlock_fair(g1); // gave up: hand A to the waiter
                p.gave_up.fetch_add(1, Relaxed);
                p.retries.fetch_add(1, Relaxed);
                back_off(j, tries);
            }
        }
    }
}
// ANCHOR_END: fix_timed

// ANCHOR: fix_one
fn one_lock(p: &Pair, k: u64) {
    for _ in 0..k {
        let mut g = p.both.lock(); // one lock guards both counters
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
        start: Barrier::new(2),
        retries: AtomicU64::new(0),
        gave_up: AtomicU64::new(0),
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
                p.start.wait();
                match role {
                    Role::FixOrder => order(&p, k),
                    Role::FixJitter => trylock(&p, ab, k, &jitter),
                    Role::FixLockstep => lockstep(&p, ab),
                    Role::FixTimed => timed(&p, ab, k, me, &jitter),
                    Role::FixOneLock => one_lock(&p, k),
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
        Role::FixOneLock => *p.both.lock(),
        _ => (*p.a.lock(), *p.b.lock()),
    };
    let [retries, gave_up, successes] =
        [&p.retries, &p.gave_up, &p.successes].map(|c| c.load(Relaxed));
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
        "no circular wait: both threads take A before B; {k} rounds each finished, counters exact");
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
        "no second lock: one mutex guards both counters; {k} rounds each finished, counters exact");
    let row = |cond: &str, fix: &str, d: &Option<Done>| {
        let us = |d: &Done| fmt_duration(Duration::from_micros(d.elapsed_us));
        let time = d.as_ref().map_or("did not finish".into(), us);
        let retries = d.as_ref().map_or(0, |d| d.retries).to_string();
        vec![cond.to_string(), fix.to_string(), time, retries]
    };
    let rows = [
        row("circular wait", "global order A then B", &order),
        row("hold and wait", "try_lock + release, random back-off", &jitter),
        row("no preemption", "timed lock gives up", &timed),
        row("a second lock to wait for", "one lock for both", &one),
    ];
    lab.table("fixes", &["takes away", "fix", "time", "retries"], &rows);
    ok1 && ok2 && ok3 && ok4
}
