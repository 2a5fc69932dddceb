//! The master's state and its bookkeeping beyond fork and waitpid: its constructor and
//! accessors, and the two extras of a real prefork master, resizing (SIGTTIN / SIGTTOU) and
//! replacing every worker one by one (SIGHUP).

use super::serve::Bufs;
use super::Cfg;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::unistd::{getpid, Pid};
use proclab::{clock, Lab, Status};
use serde_json::json;
use std::time::Duration;

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
    /// Why the next workers will be forked (for the log).
    pub reasons: std::collections::VecDeque<String>,
}

impl Master {
    pub fn new(
        cfg: Cfg,
        want: usize,
        signals: SigSet,
        interrupts: SigSet,
        grace: Duration,
    ) -> Master {
        Master {
            cfg,
            me: getpid(),
            want,
            workers: Vec::new(),
            bufs: Bufs::new(),
            signals,
            interrupts,
            no_replacement: proclab::test_removes("no_replacement"),
            grace,
            streak: 0,
            next_spawn: lab_now(),
            stop_by: None,
            rolling: Vec::new(),
            deaths: Vec::new(),
            stragglers: 0,
            reasons: Default::default(),
        }
    }

    pub fn pids(&self) -> Vec<Pid> {
        self.workers.iter().map(|w| w.pid).collect()
    }

    /// True while a replacement is due (forked once its back-off is over).
    pub fn replacing(&self) -> bool {
        !self.reasons.is_empty()
    }

    /// Workers not told to stop.
    pub fn active(&self) -> usize {
        self.workers.iter().filter(|w| !w.retiring).count()
    }

    pub fn start_all(&mut self, lab: &mut Lab) {
        for _ in 0..self.want {
            self.spawn(lab, "start".into());
        }
    }

    /// SIGTTIN / SIGTTOU: one worker more or fewer (at least 1, at most 64).
    pub fn resize(&mut self, lab: &mut Lab, want: usize) {
        if self.stop_by.is_some() || !(1..=64).contains(&want) {
            return;
        }
        if want > self.want {
            self.reasons.push_back("SIGTTIN: one more".into());
        }
        self.want = want;
        lab.observe(
            "resize",
            json!({"want": want}),
            format_args!("now {want} workers wanted"),
        );
        if self.active() > want {
            if let Some(w) = self.workers.iter_mut().rev().find(|w| !w.retiring) {
                w.retiring = true;
                let _ = kill(w.pid, Signal::SIGTERM); // finishes its request, then exits
            }
        }
    }

    /// SIGHUP: fork the new worker first, then retire one old one; the next only once it
    /// has exited. The listening socket never closes, so no connection is refused.
    pub fn roll(&mut self, lab: &mut Lab) {
        if self.workers.iter().any(|w| w.retiring) {
            return; // the previous old worker is still finishing
        }
        while let Some(old) = self.rolling.pop() {
            if let Some(i) = self.workers.iter().position(|w| w.pid == old) {
                self.spawn(lab, format!("SIGHUP: replaces {old}"));
                self.workers[i].retiring = true;
                let _ = kill(old, Signal::SIGTERM);
                return;
            }
        }
    }
}
