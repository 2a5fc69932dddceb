//! The process manager, `formation manage`: the lab runs it as a process of its own. It
//! reads the Procfile, starts the formation, relays every line (streams.rs), learns of
//! each death from SIGCHLD and waitpid, restarts or stops by its policy, and on SIGTERM
//! or SIGINT stops everything: SIGTERM to each process's group, a grace period, SIGKILL.

use crate::events::Event;
use crate::streams::Streams;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, killpg, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;
use proclab::clock::now_ns;
use proclab::test_removes;
use std::os::fd::{AsFd, BorrowedFd};

/// `formation manage ...` (the lab passes every flag).
#[derive(clap::Parser)]
pub struct ManageArgs {
    #[arg(long)]
    pub(crate) procfile: std::path::PathBuf,
    #[arg(long)]
    pub(crate) formation: String,
    #[arg(long)]
    pub(crate) port: u16,
    #[arg(long, value_enum)]
    pub(crate) policy: Policy,
    #[arg(long)]
    pub(crate) grace_ms: u64,
    #[arg(long, default_value_t = 100)]
    pub(crate) restart_ms: u64,
    #[arg(long, default_value_t = 4)]
    pub(crate) start_limit: u32,
    #[arg(long)]
    pub(crate) subreaper: bool,
}

/// What a death leads to.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// Foreman's and honcho's: one ends, all stop, the manager exits with its code.
    StopAll,
    /// systemd's Restart=on-failure: restart unless it exited with status 0.
    OnFailure,
    /// overmind's auto-restart, systemd's Restart=always: restart whatever the end.
    Always,
}

/// One process of the formation (web.1), across its restarts.
pub struct Proc {
    pub(crate) name: String,
    pub(crate) port: u16,
    pub(crate) argv: crate::exec::Strings,
    pub(crate) env: crate::exec::Strings,
    pub(crate) pid: Option<Pid>,
    pub(crate) adopted: bool,
    pub(crate) starts: Vec<u64>,
    pub(crate) due: Option<u64>,
    pub(crate) done: bool,
}

pub const MS: u64 = 1_000_000;

/// The manager's state: its processes, its output, its policy, whether it is stopping.
pub struct Manager {
    pub(crate) a: ManageArgs,
    pub(crate) ps: Vec<Proc>,
    pub(crate) io: Streams,
    pub(crate) stop_at: Option<u64>,
    pub(crate) killed: bool,
    pub(crate) code: Option<i32>,
}

pub fn run(a: ManageArgs) -> ! {
    let ps = crate::spawn::plan(&a);
    if a.subreaper && !test_removes("no_subreaper") {
        let _ = nix::sys::prctl::set_child_subreaper(true); // orphans below come to us
    }
    let width = ps.iter().map(|p| p.name.len()).max().unwrap_or(0).max(6);
    let io = Streams::new(width, now_ns(), !test_removes("line_assembly"));
    let mut mask = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        mask.add(s);
    }
    let _ = mask.thread_block(); // from now on they wait for us in the signalfd
    let flags = SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC;
    let sfd = SignalFd::with_flags(&mask, flags)
        .unwrap_or_else(|e| fail(&format!("signalfd: {e}")));
    let mut m = Manager { a, ps, io, stop_at: None, killed: false, code: None };
    (0..m.ps.len()).for_each(|i| crate::spawn::spawn(&mut m.ps[i], &mut m.io));
    // ANCHOR: loop
    while m.running() {
        let ready = m.wait(&sfd);
        m.io.read_ready(&ready[1..]);
        if ready[0] {
            while let Ok(Some(si)) = sfd.read_signal() {
                let sig = Signal::try_from(si.ssi_signo as i32)
                    .unwrap_or(Signal::SIGCHLD);
                if sig != Signal::SIGCHLD && m.stop_at.is_none() {
                    m.stop(format!("{} received", sig.as_str()));
                }
            }
            if !test_removes("no_waitpid") {
                m.reap(); // tests only skip it: the dead stay zombies, unseen
            }
        }
        m.timers(); // restarts due, and SIGKILL once the grace period is over
    }
    // ANCHOR_END: loop
    let code = m.code.unwrap_or(0);
    m.io.system(&Event::Exiting { code });
    m.io.flush();
    std::process::exit(code)
}

impl Manager {
    /// False once nothing runs and nothing is due to start (or a stop has ended it).
    fn running(&mut self) -> bool {
        self.io.flush();
        let live = self.ps.iter().any(|p| p.pid.is_some());
        live || (self.stop_at.is_none() && !self.ps.iter().all(|p| p.done))
    }

    /// poll the signalfd and every stream until one is ready or a timer is due.
    fn wait(&self, sfd: &SignalFd) -> Vec<bool> {
        let mut wake: Vec<u64> = self.ps.iter().filter_map(|p| p.due).collect();
        let grace = self.a.grace_ms * MS;
        wake.extend(self.stop_at.filter(|_| !self.killed).map(|t| t + grace));
        let ms =
            wake.iter().min().map(|&t| t.saturating_sub(now_ns()).div_ceil(MS));
        let timeout = ms
            .map_or(PollTimeout::NONE, |m| PollTimeout::from(m.min(60_000) as u16));
        let fds = self.io.fds();
        // SAFETY: the descriptors in `fds` stay open in `io` while this poll runs.
        let borrowed = fds.iter().map(|&f| unsafe { BorrowedFd::borrow_raw(f) });
        let mut pfd = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        pfd.extend(borrowed.map(|f| PollFd::new(f, PollFlags::POLLIN)));
        let _ = poll(&mut pfd, timeout);
        pfd.iter().map(|p| p.any() == Some(true)).collect()
    }

    /// Start the restarts that are due.
    fn timers(&mut self) {
        let now = now_ns();
        for p in self.ps.iter_mut().filter(|p| p.due.is_some_and(|t| t <= now)) {
            p.due = None;
            crate::spawn::spawn(p, &mut self.io);
        }
        self.escalate();
    }

    // ANCHOR: stop
    /// SIGTERM to every live process; the grace period starts now.
    pub fn stop(&mut self, why: String) {
        self.stop_at = Some(now_ns());
        let count = self.ps.iter().filter(|p| p.pid.is_some()).count();
        self.io.system(&Event::Stopping { why, count });
        for p in self.ps.iter_mut() {
            (p.due, p.done) = (None, true); // no restart from now on
            if let Some(pid) = p.pid {
                signal(p, Signal::SIGTERM);
                let (name, pid, signal) =
                    (p.name.clone(), pid.as_raw(), "SIGTERM".into());
                self.io.system(&Event::Sent { signal, name, pid, after_ms: 0 });
            }
        }
    }

    // ANCHOR_END: stop

    // ANCHOR: escalate
    /// At the end of the grace period (TimeoutStopSec=), SIGKILL what is left.
    fn escalate(&mut self) {
        let grace = self.a.grace_ms;
        let late = self.stop_at.is_some_and(|t| now_ns() >= t + grace * MS);
        if !late || self.killed || test_removes("no_escalation") {
            return;
        }
        self.killed = true;
        for p in self.ps.iter().filter(|p| p.pid.is_some()) {
            signal(p, Signal::SIGKILL);
            let (name, pid, signal) =
                (p.name.clone(), raw(p.pid), "SIGKILL".into());
            self.io.system(&Event::Sent { signal, name, pid, after_ms: grace });
        }
    }
    // ANCHOR_END: escalate
}

fn raw(pid: Option<Pid>) -> i32 {
    pid.map_or(0, |p| p.as_raw())
}

/// A process we forked leads its own group: signal the group (its children too). An
/// adopted daemon is in a session of its own: signal it.
fn signal(p: &Proc, sig: Signal) {
    match p.pid {
        Some(pid) if p.adopted => {
            let _ = kill(pid, sig);
        }
        Some(pid) => {
            let _ = killpg(pid, sig);
        }
        None => {}
    }
}

pub fn fail(what: &str) -> ! {
    eprintln!("formation manage: {what}");
    std::process::exit(2)
}
