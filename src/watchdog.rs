//! A watchdog: if the work is not done by the deadline, run a breaker (kill the stuck
//! process, close a descriptor) and remember that it fired. Labs that demonstrate a hang
//! arm one before the hang, so the lab always ends. The deadline is in lab time
//! ([`crate::clock::Deadline`]): a `--step` pause does not make it fire.

use crate::clock::Deadline;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct Watchdog {
    disarm: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    fired: Arc<AtomicBool>,
    started: Instant,
}

impl Watchdog {
    /// Start a watchdog thread: unless [`Watchdog::disarm`]ed within `deadline`, it calls
    /// `breaker` once.
    pub fn arm(
        deadline: Duration,
        breaker: impl FnOnce() + Send + 'static,
    ) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let flag = fired.clone();
        let thread = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                let end = Deadline::after(deadline);
                loop {
                    // Wake at least every 50 ms: a pause may have moved the end.
                    let wait = end.remaining().min(Duration::from_millis(50));
                    match rx.recv_timeout(wait) {
                        Err(mpsc::RecvTimeoutError::Timeout) if end.expired() => {
                            flag.store(true, Ordering::SeqCst);
                            breaker();
                            return;
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => continue,
                        _ => return, // disarmed
                    }
                }
            })
            .expect("spawn watchdog thread");
        Watchdog {
            disarm: Some(tx),
            thread: Some(thread),
            fired,
            started: Instant::now(),
        }
    }

    /// True once the deadline passed and the breaker ran.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Time since the watchdog was armed.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stop the watchdog (if it has not fired yet) and return whether it fired.
    pub fn disarm(mut self) -> bool {
        self.stop();
        self.fired()
    }

    fn stop(&mut self) {
        if let Some(tx) = self.disarm.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop();
    }
}
