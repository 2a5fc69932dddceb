//! `--model threads`: the same accept loop in N threads of one process, for comparison.

use super::serve::Bufs;
use super::{accept_loop, wait_signal, Cfg, STOP};
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::getpid;
use proclab::{say, say_as, Lab};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Serve with `n` threads until SIGTERM (graceful, bounded by `grace`) or SIGINT / SIGQUIT
/// (fast). Returns whether the stop was graceful and how many threads had finished.
pub fn serve(
    lab: &mut Lab,
    cfg: Cfg,
    n: usize,
    signals: &SigSet,
    grace: Duration,
) -> (bool, usize) {
    let threads: Vec<_> = (0..n)
        .map(|_| {
            std::thread::spawn(move || {
                let mut bufs = Bufs::new();
                let fd = cfg.listener();
                // SAFETY: gettid has no preconditions.
                let tid = unsafe { libc::gettid() };
                say_as!("thread", "{tid} ready, blocking in accept()");
                let (c, r) = accept_loop(fd, &cfg, &mut bufs, tid, None);
                say_as!(
                    "thread",
                    "{tid} stopping: served {c} connections, {r} requests"
                );
            })
        })
        .collect();
    say!(
        "serving with {n} threads in process {}; SIGTERM stops gracefully, Ctrl-C fast",
        getpid()
    );
    let graceful = loop {
        match wait_signal(signals, Duration::from_secs(1)).map(|(s, _)| s) {
            Some(Signal::SIGTERM) => break true,
            Some(Signal::SIGINT | Signal::SIGQUIT) => break false,
            Some(s @ (Signal::SIGTTIN | Signal::SIGTTOU | Signal::SIGHUP)) => {
                say!("{s} is for the process model only")
            }
            _ => {}
        }
    };
    STOP.store(true, Ordering::SeqCst); // threads notice within one accept tick
    let deadline = Instant::now() + if graceful { grace } else { Duration::ZERO };
    while Instant::now() < deadline && !threads.iter().all(|t| t.is_finished()) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let done = threads.iter().filter(|t| t.is_finished()).count();
    lab.observe(
        "stop",
        json!({"graceful": graceful, "threads": n, "finished": done}),
        format_args!(
            "{} stop: {done} of {n} threads finished their requests",
            if graceful { "graceful" } else { "fast" }
        ),
    );
    (graceful, done) // process exit ends any thread left
}
