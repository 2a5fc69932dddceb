//! Solution of deadlock-order: both threads lock `a` before `b`, so no cycle of waits can
//! form (circular wait is gone); they still contend for `a`.

use proclab::say_as;
use std::sync::Mutex;
use std::time::Duration;

const ROUNDS: usize = 200;

pub fn main() {
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
                // The global order, as in the thread above: `a` first, then `b`.
                let mut to = a.lock().unwrap();
                std::thread::sleep(Duration::from_millis(1));
                let mut from = b.lock().unwrap();
                (*from, *to) = (*from - 1, *to + 1);
            }
        });
    });
    let (a, b) = (a.into_inner().unwrap(), b.into_inner().unwrap());
    say_as!("main", "a = {a}, b = {b}, total {}", a + b);
}
