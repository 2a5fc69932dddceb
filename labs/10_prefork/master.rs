//! The master's loop: it takes its signals one at a time with `sigtimedwait`, reaps every
//! dead worker with `waitpid(-1, WNOHANG)`, replaces it (with a back-off when workers die
//! young), and stops them (SIGTERM graceful, SIGKILL fast). Forking a worker is in
//! bind_and_fork.rs, stopping them in graceful_stop.rs, its signals in signals.rs, and
//! SIGTTIN, SIGTTOU and SIGHUP in resize.rs.

use crate::serve::Bufs;
use crate::signals::{hand_back, wait_signal};
use crate::worker::Cfg;
use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpid, Pid};
use proclab::{cleanup, clock, die, observe, say, Lab, Status};
use std::collections::VecDeque;
use std::time::Duration;

/// A worker that dies younger than this counts toward a crash loop.
pub const YOUNG: Duration = Duration::from_millis(500);

/// Lab time (the monotonic clock without `--step` pauses), for the master's clocks: a
/// pause at a prompt never makes a deadline pass or a worker look old.
pub fn lab_now() -> Duration {
    Duration::from_nanos(clock::lab_ns())
}

pub struct Worker {
    pub pid: Pid,
    /// When it was forked, in lab time.
    pub born: Duration,
    /// Told to stop (SIGTTOU, SIGHUP): not replaced when it dies.
    pub retiring: bool,
}

/// How a worker ended, as waitpid told the master.
#[derive(Clone, Debug)]
pub struct Death {
    pub pid: Pid,
    pub status: Status,
}

/// The supervisor: its workers, the deaths it reaped, and the state of its loop.
pub struct Master {
    pub cfg: Cfg,
    pub me: Pid,
    pub want: usize,
    pub workers: Vec<Worker>,
    pub bufs: Bufs,
    pub signals: SigSet,
    /// Signals that, sent by anyone but the master itself, end the lab (the demo): the
    /// master hands them back to the harness's handler, which cleans up and dies of them.
    pub interrupts: SigSet,
    /// Tests only: the master does not replace a dead worker.
    pub no_replacement: bool,
    /// The demo's attack servers: no observation per fork and per death.
    pub quiet: bool,
    pub grace: Duration,
    /// Consecutive deaths of young workers (a crash loop).
    pub streak: u32,
    pub next_spawn: Duration,
    /// When stopping: the deadline (lab time) after which the rest get SIGKILL.
    pub stop_by: Option<Duration>,
    /// SIGHUP: old workers still to be replaced, one at a time.
    pub rolling: Vec<Pid>,
    pub deaths: Vec<Death>,
    pub stragglers: usize,
    /// Why the next workers will be forked (for the log): one entry per replacement due.
    pub reasons: VecDeque<String>,
}

impl Master {
    pub fn new(cfg: Cfg, want: usize, signals: SigSet, grace: Duration) -> Master {
        Master {
            cfg,
            me: getpid(),
            want,
            workers: Vec::new(),
            bufs: Bufs::new(),
            signals,
            interrupts: SigSet::empty(),
            no_replacement: proclab::test_removes("no_replacement"),
            quiet: false,
            grace,
            streak: 0,
            next_spawn: lab_now(),
            stop_by: None,
            rolling: Vec::new(),
            deaths: Vec::new(),
            stragglers: 0,
            reasons: VecDeque::new(),
        }
    }

    pub fn pids(&self) -> Vec<Pid> {
        self.workers.iter().map(|w| w.pid).collect()
    }

    /// Workers not told to stop.
    pub fn active(&self) -> usize {
        self.workers.iter().filter(|w| !w.retiring).count()
    }

    /// True while a replacement is due (forked once its back-off is over).
    pub fn replacing(&self) -> bool {
        !self.reasons.is_empty()
    }

    pub fn start_all(&mut self, lab: &mut Lab) {
        for _ in 0..self.want {
            self.spawn(lab, "start".into());
        }
    }

    /// The server without the demo: supervise until SIGTERM or SIGINT, then verdict.
    pub fn serve(mut self, mut lab: Lab) -> ! {
        let port = self.cfg.port;
        say!(
            "SIGTERM stops gracefully, Ctrl-C fast, SIGTTIN/SIGTTOU add or remove \
              a worker, SIGHUP replaces them all; try curl -s 127.0.0.1:{port}/"
        );
        self.start_all(&mut lab);
        while !self.tick(&mut lab, Duration::from_secs(1)) {}
        self.check_stopped(&mut lab);
        lab.finish()
    }

    /// One turn of the master's loop: take one signal (waiting at most `wait`), reap the
    /// dead, start the missing. Returns true once stopped with every worker reaped.
    pub fn tick(&mut self, lab: &mut Lab, wait: Duration) -> bool {
        let now = lab_now();
        let mut wait = wait;
        if self.stop_by.is_none() && self.active() < self.want {
            wait = wait.min(self.next_spawn.saturating_sub(now));
        }
        if let Some(by) = self.stop_by {
            wait = wait.min(by.saturating_sub(now));
        }
        let taken = wait_signal(&self.signals, wait);
        if let Some((s, from)) = taken {
            if self.interrupts.contains(s) && from != self.me.as_raw() {
                hand_back(s); // the demo is interrupted: clean up, die of it
            }
        }
        // ANCHOR: tick
        match taken.map(|(s, _)| s) {
            Some(Signal::SIGTERM) => self.stop(lab, Signal::SIGTERM, "graceful"),
            Some(Signal::SIGINT | Signal::SIGQUIT) => {
                self.stop(lab, Signal::SIGKILL, "fast")
            }
            Some(Signal::SIGTTIN) => self.resize(lab, self.want + 1),
            Some(Signal::SIGTTOU) => self.resize(lab, self.want.saturating_sub(1)),
            Some(Signal::SIGHUP) => self.roll_all(),
            _ => {} // SIGCHLD or the timeout: reap below
        }
        self.reap(lab);
        // ANCHOR_END: tick
        if let Some(by) = self.stop_by {
            if self.workers.is_empty() {
                return true;
            }
            if lab_now() >= by {
                for w in &self.workers {
                    let _ = kill(w.pid, Signal::SIGKILL); // past the deadline
                }
                self.stragglers += self.workers.len();
                self.stop_by = Some(lab_now() + Duration::from_secs(5));
            }
            return false;
        }
        self.roll(lab);
        while !self.no_replacement
            && self.active() < self.want
            && lab_now() >= self.next_spawn
        {
            let why =
                self.reasons.pop_front().unwrap_or_else(|| "replacement".into());
            self.spawn(lab, why);
        }
        false
    }

    /// Reap every dead worker: one SIGCHLD may stand for several deaths (signals of one
    /// kind do not queue), so call waitpid(-1, WNOHANG) until nobody else is dead.
    fn reap(&mut self, lab: &mut Lab) {
        loop {
            // ANCHOR: reap
            let any = Pid::from_raw(-1);
            let status = match waitpid(any, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return, // no more
                Ok(s) => s,
                Err(e) => die("waitpid", e),
            };
            let Some(pid) = status.pid() else { continue };
            cleanup::forget(pid); // reaped: its pid may be reused, never kill it
            let Some(i) = self.workers.iter().position(|w| w.pid == pid) else {
                continue;
            };
            let w = self.workers.remove(i);
            // As TLPI prints it: "exited, status 0", "killed by SIGKILL".
            let status = Status::from(status);
            // ANCHOR_END: reap
            // ANCHOR: backoff
            let age = lab_now().saturating_sub(w.born);
            let replaced =
                !w.retiring && self.stop_by.is_none() && !self.no_replacement;
            // Young failures in a row are a crash loop: wait 100 ms, 200 ms, ... up to 5 s.
            // (A worker that exits 0 young has served its --max-requests.)
            let failed = status.code() != Some(0);
            self.streak = if age < YOUNG && failed { self.streak + 1 } else { 0 };
            let delay = match self.streak {
                0 | 1 => Duration::ZERO,
                k => Duration::from_millis(100 << (k - 2).min(6))
                    .min(Duration::from_secs(5)),
            };
            if replaced {
                self.next_spawn = self.next_spawn.max(lab_now() + delay);
                self.reasons.push_back(format!("replaces {pid}"));
            }
            // ANCHOR_END: backoff
            self.deaths.push(Death { pid, status });
            if self.quiet {
                continue;
            }
            let then = match (replaced, delay.as_millis()) {
                (false, _) => "not replaced".to_string(),
                (true, 0) => "replacing it".to_string(),
                (true, ms) => format!("crash loop: replacement in {ms} ms"),
            };
            observe!(
                lab,
                "worker_died",
                "waitpid: worker {pid} {status} after {age_ms} ms; {then}",
                pid = pid.as_raw(),
                status,
                age_ms = age.as_millis() as u64,
                replaced,
                delay_ms = delay.as_millis() as u64
            );
        }
    }
}
