//! Demo section 4, graceful stop: the master sends itself SIGTERM while a request is in
//! flight; its loop takes the signal and passes SIGTERM on; the busy worker finishes the
//! request and exits 0, the idle ones exit at once, then the port refuses connections.

use crate::client::{blocked_in, connect, get, ok};
use crate::master::{lab_now, Master};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::unistd::getpid;
use proclab::{check, observe, procfacts, Lab, OrDie};
use std::time::{Duration, Instant};

pub fn run(lab: &mut Lab, m: &mut Master) {
    lab.section("4. Graceful stop: SIGTERM to the master with a request in flight");
    let (port, me) = (m.cfg.port, getpid());
    // Until now SIGTERM was the harness's (clean up, die of it). From here it is blocked,
    // in this thread and in the one spawned below, so the master's loop takes it; the
    // loop hands one sent by anyone else back to the harness.
    SigSet::from(Signal::SIGTERM).thread_block().or_die("pthread_sigmask");
    m.signals.add(Signal::SIGTERM);
    m.interrupts.add(Signal::SIGTERM);
    // ANCHOR: graceful
    let in_flight = std::thread::spawn(move || get(port, "/work?ms=600"));
    let sleeper = procfacts::poll_until(Duration::from_secs(10), || {
        m.pids()
            .into_iter()
            .find(|&p| blocked_in(p, libc::SYS_clock_nanosleep, "nanosleep"))
    });
    let stop_at = Instant::now();
    kill(me, Signal::SIGTERM).or_die("kill"); // to itself; its loop takes it
    let before = m.deaths.len();
    while !m.tick(lab, Duration::from_millis(200)) {} // --grace-ms, then SIGKILL
    let stop_ms = stop_at.elapsed().as_millis() as u64;
    let answer = in_flight.join().unwrap_or_else(|_| Err("thread panicked".into()));
    // ANCHOR_END: graceful
    // From now on a SIGTERM from outside ends the lab (the harness's handler).
    SigSet::from(Signal::SIGTERM).thread_unblock().or_die("pthread_sigmask");
    let pid = sleeper.map(|p| p.as_raw());
    let seen = match pid {
        Some(p) => format!("worker {p} was in clock_nanosleep (/proc/{p}/syscall)"),
        None => "no worker was seen in clock_nanosleep".into(),
    };
    observe!(lab, "in_flight", "{seen} when SIGTERM was sent", pid);
    let text = match &answer {
        Ok((code, body)) => format!("{code} \"{}\"", body.trim_end()),
        Err(e) => format!("no answer ({e})"),
    };
    observe!(
        lab,
        "in_flight_answer",
        "the in-flight request got {answer}; all workers gone {stop_ms} ms after \
         SIGTERM",
        ok = ok(&answer),
        answer = text,
        stop_ms
    );
    // The worker's answer says whether SIGTERM reached it while it served the request.
    let told = matches!(&answer,
        Ok((200, b)) if b.contains("slept 600 ms") && b.contains("told to stop"));
    check!(
        lab,
        "in_flight_finished",
        sleeper.is_some() && told,
        "the request in flight when SIGTERM came was answered 200 (and the worker \
         says it was told to stop meanwhile) before its worker exited"
    );
    let last = &m.deaths[before..];
    let workers = last.len();
    let exited_0 = last.iter().filter(|d| d.status.code() == Some(0)).count();
    let refused = matches!(connect(port), Err(e) if e.contains("refused"));
    let stragglers = m.stragglers;
    let port_is =
        if refused { "refused (the port is closed)" } else { "NOT refused" };
    observe!(
        lab,
        "after_stop",
        "{exited_0} of {workers} workers exited with status 0, {stragglers} needed \
         SIGKILL; a new connection is {port_is}",
        exited_0,
        workers,
        stragglers,
        refused
    );
    let clean_stop = m.check_stopped(lab);
    check!(lab, "graceful_exit",
        clean_stop && exited_0 == workers && stragglers == 0 && refused,
        "every worker exited on its own with status 0 within the grace time, and the \
         port is closed");
}

impl Master {
    /// Stop every worker: SIGTERM (graceful, within the grace time) or SIGKILL (fast).
    pub fn stop(&mut self, lab: &mut Lab, sig: Signal, how: &str) {
        if self.stop_by.is_some() && sig != Signal::SIGKILL {
            return;
        }
        // ANCHOR: stop
        if self.stop_by.is_none() {
            // The port closes when the last worker exits: they hold copies of it.
            // SAFETY: the master's copy of the listening socket, not used again.
            unsafe { libc::close(self.cfg.listen_fd) };
        }
        for w in &self.workers {
            let _ = kill(w.pid, sig);
        }
        let grace = if sig == Signal::SIGKILL {
            Duration::from_secs(5)
        } else {
            self.grace
        };
        self.stop_by = Some(lab_now() + grace);
        // ANCHOR_END: stop
        let (workers, sent) = (self.workers.len(), sig.as_str());
        if self.quiet {
            return;
        }
        let signalled: Vec<i32> =
            self.workers.iter().map(|w| w.pid.as_raw()).collect();
        // After the signals, so that a --step pause here delays no worker.
        observe!(
            lab,
            "stop",
            "{how} stop: {sent} to {workers} workers",
            sent,
            workers,
            signalled
        );
    }

    /// After a stop: every worker reaped and none alive.
    pub fn check_stopped(&mut self, lab: &mut Lab) -> bool {
        let reaped = self.deaths.len();
        let alive = self.workers.len()
            + self
                .deaths
                .iter()
                .filter(|d| procfacts::exists(d.pid.as_raw()))
                .count();
        check!(
            lab,
            "shutdown_clean",
            self.workers.is_empty() && alive == 0,
            "{reaped} workers reaped by the master, {alive} left alive",
            reaped,
            alive
        )
    }
}
