//! `--model threads`: the same accept loop in N threads of one process, for comparison.

use crate::serve::Bufs;
use crate::signals::wait_signal;
use crate::worker::{accept_loop, Cfg, STOP};
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::getpid;
use proclab::{check, observe, say, say_as, Lab};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Serve with `n` threads until SIGTERM (graceful, bounded by `grace`) or SIGINT / SIGQUIT
/// (fast), then the verdict. The process's exit ends any thread left.
pub fn serve(
    mut lab: Lab,
    cfg: Cfg,
    n: usize,
    signals: &SigSet,
    grace: Duration,
) -> ! {
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
    let finished = threads.iter().filter(|t| t.is_finished()).count();
    let how = if graceful { "graceful" } else { "fast" };
    observe!(
        lab,
        "stop",
        "{how} stop: {finished} of {n} threads finished their requests",
        graceful,
        threads = n,
        finished
    );
    check!(
        lab,
        "shutdown_clean",
        !graceful || finished == n,
        "{finished} of {n} threads finished before the process exits",
        finished,
        n
    );
    lab.finish()
}
