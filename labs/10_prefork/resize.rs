//! Two extras of a real prefork master: one worker more or fewer (SIGTTIN, SIGTTOU), and
//! every worker replaced one by one without refusing a connection (SIGHUP).

use crate::master::Master;
use nix::sys::signal::{kill, Signal};
use proclab::{observe, say, Lab};

impl Master {
    /// SIGTTIN / SIGTTOU: one worker more or fewer (at least 1, at most 64).
    pub fn resize(&mut self, lab: &mut Lab, want: usize) {
        if self.stop_by.is_some() || !(1..=64).contains(&want) {
            return;
        }
        if want > self.want {
            self.reasons.push_back("SIGTTIN: one more".into());
        }
        self.want = want;
        observe!(lab, "resize", "now {want} workers wanted", want);
        if self.active() > want {
            if let Some(w) = self.workers.iter_mut().rev().find(|w| !w.retiring) {
                w.retiring = true;
                let _ = kill(w.pid, Signal::SIGTERM); // finishes its request, then exits
            }
        }
    }

    /// SIGHUP: every worker there now is to be replaced, one at a time.
    pub fn roll_all(&mut self) {
        if self.stop_by.is_some() {
            return;
        }
        self.rolling =
            self.workers.iter().filter(|w| !w.retiring).map(|w| w.pid).collect();
        say!("SIGHUP: replacing {} workers one by one", self.rolling.len());
    }

    /// Fork the new worker first, then retire one old one; the next only once it has
    /// exited. The listening socket never closes, so no connection is refused.
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
