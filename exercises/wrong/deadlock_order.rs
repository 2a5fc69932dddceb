//! A wrong solution of deadlock-order: thread A is joined before thread B starts. Nothing
//! deadlocks, but nothing runs at the same time either. The check `together` fails.

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
        })
        .join() // no deadlock if thread B starts only when thread A is done
        .unwrap();
        s.spawn(|| {
            for _ in 0..ROUNDS {
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
