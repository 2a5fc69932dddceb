//! Exercise deadlock-order (chapter 7, book/src/07-deadlock.md): break it by lock order.
//!
//! Two threads move money between two accounts, each behind its own Mutex, 200 times.
//! Thread A locks `a` then `b`, thread B locks `b` then `a`, and each holds its first lock
//! for a millisecond: as given, they deadlock at once. Make them finish by taking the
//! locks in one global order; the two threads must still run at the same time.
//!
//! Check: `cargo run --bin lab -- check deadlock-order`. The program must end by itself
//! (when it does not, the checker shows where each thread waits: /proc/PID/task/TID/wchan);
//! two worker threads must run at once, and one must be seen waiting for a lock.

use proclab::say_as;
use std::sync::Mutex;
use std::time::Duration;

const ROUNDS: usize = 200;

fn main() {
    let (a, b) = (Mutex::new(1000i64), Mutex::new(1000i64));
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..ROUNDS {
                let mut from = a.lock().unwrap();
                std::thread::sleep(Duration::from_millis(1));
                let mut to = b.lock().unwrap();
                (*from, *to) = (*from - 1, *to + 1);
            }
        });
        s.spawn(|| {
            for _ in 0..ROUNDS {
                // TODO: this order can deadlock with the thread above.
                let mut from = b.lock().unwrap();
                std::thread::sleep(Duration::from_millis(1));
                let mut to = a.lock().unwrap();
                (*from, *to) = (*from - 1, *to + 1);
            }
        });
    });
    let (a, b) = (a.into_inner().unwrap(), b.into_inner().unwrap());
    say_as!("main", "a = {a}, b = {b}, total {}", a + b);
}
