//! What a run of the lab uses, worked out once from the flags: the core count, N, the
//! windows, the two mixes of work, the descriptor limit that 1000 connections need, and
//! the size of a kernel stack (measured), which a thread's memory counts.

use crate::app::Cost;
use crate::{procview, Args, Model, Part};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use proclab::{cpu, die};
use std::time::Duration;

pub struct Plan {
    pub cores: usize,
    /// N of the prefork and pool models in the loads: 2 x cores + 1, or --workers.
    pub workers: usize,
    pub window: Duration,
    /// The window of one point of the sweep.
    pub sweep_window: Duration,
    pub request_ms: u64,
    pub clients: usize,
    pub idle: usize,
    pub slow: usize,
    pub slow_step: Duration,
    pub quick: bool,
    parts: Vec<Part>,
    /// Flags every started server gets: the keep-alive and the loops' connection cap.
    pub server_flags: Vec<String>,
    /// What one kernel stack costs, in KiB (measured; see procview::kernel_stack).
    pub kstack_kib: f64,
    /// How kstack_kib was found, for the observation.
    pub kstack_how: String,
}

impl Plan {
    pub fn new(a: &Args) -> Plan {
        let cores = cpu::cpus();
        let window_ms = a.window_ms.unwrap_or(if a.quick { 150 } else { 500 });
        let plan = Plan {
            cores,
            workers: a.workers.map_or(2 * cores + 1, |n| n as usize),
            window: Duration::from_millis(window_ms),
            sweep_window: Duration::from_millis((window_ms / 2).max(100)),
            request_ms: a.request_ms,
            clients: a.clients as usize,
            idle: a.idle as usize,
            slow: a.slow as usize,
            slow_step: Duration::from_millis(a.slow_step_ms),
            quick: a.quick,
            parts: a.part.clone(),
            server_flags: crate::server::shared_flags(a),
            kstack_kib: 0.0,
            kstack_how: String::new(),
        };
        raise_fd_limit(plan.idle + plan.clients + plan.slow + 256);
        let (kib, how) = procview::kernel_stack();
        Plan { kstack_kib: kib, kstack_how: how, ..plan }
    }

    /// True if any of `parts` is to run (every part runs without --part).
    pub fn runs(&self, parts: &[Part]) -> bool {
        self.parts.is_empty() || parts.iter().any(|p| self.parts.contains(p))
    }

    /// N for `model` in the loads: the pool's and prefork's N, one loop per core.
    pub fn workers_of(&self, model: Model) -> usize {
        match model {
            Model::Prefork | Model::Pool => self.workers,
            Model::Threads | Model::Loop => 1,
            Model::Loops => self.cores,
        }
    }

    /// A request with `io_percent` of its cost spent waiting.
    pub fn mix(&self, io_percent: u64) -> Cost {
        let wait_ms = self.request_ms * io_percent / 100;
        Cost { cpu_ms: self.request_ms - wait_ms, wait_ms }
    }
}

/// Every connection is a descriptor on each side: raise the soft RLIMIT_NOFILE (which
/// the servers inherit) to `need`, or stop if the hard limit is lower.
fn raise_fd_limit(need: usize) {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)
        .unwrap_or_else(|e| die("getrlimit(RLIMIT_NOFILE)", e));
    let need = need as u64;
    if soft >= need {
        return;
    }
    if hard < need {
        eprintln!(
            "error: {need} descriptors are needed (--idle and the clients), but the \
             hard RLIMIT_NOFILE is {hard}: lower --idle, or raise it (ulimit -Hn)"
        );
    }
    if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, need.min(hard), hard) {
        die("setrlimit(RLIMIT_NOFILE)", e);
    }
    if hard < need {
        die("setrlimit(RLIMIT_NOFILE)", nix::errno::Errno::EMFILE);
    }
}
