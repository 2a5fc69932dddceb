//! What a death leads to: the manager reaps (waitpid), says who ended and how, and
//! applies its policy: stop them all (Foreman, honcho), or restart with back-off up to
//! a start limit (systemd), or, as a subreaper, adopt the daemon a process left behind.

use crate::events::{End, Event};
use crate::manager::{Manager, Policy, MS};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpid, Pid};
use proclab::clock::now_ns;
use proclab::test_removes;

impl Manager {
    // ANCHOR: reap
    /// Every child that has ended: who it was, how, and what the policy says.
    pub fn reap(&mut self) {
        while let Ok(st) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            let (pid, end) = match st {
                WaitStatus::Exited(pid, c) => (pid, End::Exited(c)),
                WaitStatus::Signaled(pid, s, _) => {
                    (pid, End::Killed(s.as_str().into()))
                }
                _ => return, // StillAlive: nobody else has ended
            };
            let Some(i) = self.ps.iter().position(|p| p.pid == Some(pid)) else {
                continue; // not one of ours (an orphan we did not adopt)
            };
            self.io.drain(&self.ps[i].name); // its last lines first
            self.ps[i].pid = None;
            let (name, raw) = (self.ps[i].name.clone(), pid.as_raw());
            self.io.system(&Event::Ended { name, pid: raw, end: end.clone() });
            // Unless it left a daemon behind, which is now ours to supervise:
            if !(self.a.subreaper && self.adopt(i)) {
                self.decide(i, raw, end);
            }
        }
    }
    // ANCHOR_END: reap

    // ANCHOR: decide
    /// What the policy makes of the end of process `i`.
    fn decide(&mut self, i: usize, pid: i32, end: End) {
        let foreman = test_removes("foreman_exit_code"); // tests only
        match self.a.policy {
            _ if self.stop_at.is_some() => self.ps[i].done = true, // stopping
            Policy::StopAll => {
                if !foreman {
                    self.code.get_or_insert(end.shell_code()); // 128 + N: signal N
                }
                self.stop(format!("{} (pid {pid}) {end}", self.ps[i].name));
            }
            Policy::OnFailure if end == End::Exited(0) => self.ps[i].done = true,
            _ => self.backoff(i),
        }
        if let (true, End::Exited(c)) = (foreman, &end) {
            self.code.get_or_insert(*c); // Foreman's `@exitstatus ||= exitstatus`
        }
    }
    // ANCHOR_END: decide

    // ANCHOR: backoff
    /// Restart after RestartSec, doubled for each start in the last 10 s; give up
    /// at the start limit (systemd: StartLimitBurst= in StartLimitIntervalSec=10s).
    fn backoff(&mut self, i: usize) {
        let (now, a, p) = (now_ns(), &self.a, &mut self.ps[i]);
        p.starts.retain(|&t| now - t < 10_000 * MS);
        let n = p.starts.len() as u32;
        if n >= a.start_limit && !test_removes("no_backoff") {
            p.done = true;
            return self
                .io
                .system(&Event::GaveUp { name: p.name.clone(), starts: n });
        }
        let mut delay_ms = a.restart_ms << n.saturating_sub(1).min(10);
        if test_removes("no_backoff") {
            delay_ms = 0; // tests only: restart at once, forever
        }
        p.due = Some(now + delay_ms * MS);
        let (name, limit) = (p.name.clone(), a.start_limit);
        self.io.system(&Event::Restarting { name, delay_ms, start: n + 1, limit });
    }
    // ANCHOR_END: backoff

    // ANCHOR: adopt
    /// As a subreaper: a child of ours that we did not fork, whose environment says
    /// it is process `i` (PS=daemon.1), is its daemon: supervise it in its place.
    fn adopt(&mut self, i: usize) -> bool {
        let me = getpid().as_raw();
        let p = &mut self.ps[i];
        let orphan = crate::seen::children(me).into_iter().find(|s| s.ps == p.name);
        let Some(o) = orphan else { return false };
        (p.pid, p.adopted) = (Some(Pid::from_raw(o.pid)), true);
        self.io.system(&Event::Adopted { name: p.name.clone(), pid: o.pid });
        true
    }
    // ANCHOR_END: adopt
}
