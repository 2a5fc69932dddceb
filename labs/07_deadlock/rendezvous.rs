//! Where every fix starts: each thread at its first lock, as in the deadlock. A barrier
//! that also lets through a thread waiting for a lock another one holds (it cannot get
//! past its first lock until that one is given back), so that without the fix the
//! deadlock is certain, and with it the fix is tried from the very same state.

use parking_lot::{Mutex, MutexGuard};
use std::sync::Condvar;

/// Where a thread is on its way to its first lock (a lock is named by its address).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Step {
    Starting,
    Asks(usize),
    Holds(usize),
}

/// The first round of `n` threads.
pub struct Rendezvous {
    steps: std::sync::Mutex<Vec<Step>>,
    moved: Condvar,
}

// ANCHOR: all_there
/// True when every thread holds its first lock, or asks for one another holds.
fn all_there(steps: &[Step]) -> bool {
    let held = |lock| steps.contains(&Step::Holds(lock));
    steps.iter().all(|s| match *s {
        Step::Holds(_) => true,
        Step::Asks(lock) => held(lock),
        Step::Starting => false,
    })
}
// ANCHOR_END: all_there

impl Rendezvous {
    pub fn new(n: usize) -> Rendezvous {
        let steps = std::sync::Mutex::new(vec![Step::Starting; n]);
        Rendezvous { steps, moved: Condvar::new() }
    }

    fn set(&self, me: usize, step: Step) {
        let mut s = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        s[me] = step;
        self.moved.notify_all();
    }

    // ANCHOR: first
    /// Thread `me` takes `m`, its first lock of round `round`. In round 0 it
    /// then waits until every thread holds its own first lock, or waits for
    /// one that another thread holds: the state the deadlock starts from.
    pub fn first<'a, T>(
        &self,
        m: &'a Mutex<T>,
        me: usize,
        round: u64,
    ) -> MutexGuard<'a, T> {
        if round > 0 {
            return m.lock();
        }
        let lock = std::ptr::from_ref(m) as usize;
        self.set(me, Step::Asks(lock));
        let guard = m.lock();
        self.set(me, Step::Holds(lock));
        let steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        let all = self.moved.wait_while(steps, |s| !all_there(s));
        drop(all.unwrap_or_else(|e| e.into_inner()));
        guard
    }
    // ANCHOR_END: first
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_thread_waiting_for_a_held_lock_counts_as_there() {
        use Step::*;
        assert!(!all_there(&[Holds(1), Starting]));
        assert!(!all_there(&[Holds(1), Asks(2)]), "lock 2 is free: it will get it");
        assert!(all_there(&[Holds(1), Asks(1)]), "lock 1 is held: it must wait");
        assert!(all_there(&[Holds(1), Holds(2)]));
    }

    #[test]
    fn two_threads_in_one_order_pass_it_and_finish() {
        let (r, a) = (Arc::new(Rendezvous::new(2)), Arc::new(Mutex::new(0)));
        let t: Vec<_> = (0..2)
            .map(|me| {
                let (r, a) = (r.clone(), a.clone());
                std::thread::spawn(move || *r.first(&a, me, 0) += 1)
            })
            .collect();
        t.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(*a.lock(), 2);
    }
}
