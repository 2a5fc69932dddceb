//! Part 6's client: a few threads of the lab, each moved into the client's namespace
//! (setns works per thread for a network namespace), sending `GET /` to nginx one after
//! another, each request bounded, each answer kept with the phase it was sent in.

use crate::http::{self, Reply};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request: the phase it was sent in, and what came back (or why nothing did).
#[derive(Clone, Debug)]
pub struct Hit {
    pub phase: u8,
    /// When it was answered (or failed), in lab time (ns).
    pub at: u64,
    pub reply: Result<Reply, String>,
}

impl Hit {
    /// The pid that answered, if the answer was a 200.
    pub fn pid(&self) -> Option<i32> {
        self.reply.as_ref().ok().filter(|r| r.status == 200).and_then(|r| r.pid())
    }
    /// How many upstreams nginx tried for it (a retry shows as two, comma-separated).
    pub fn tries(&self) -> usize {
        let up = self.reply.as_ref().ok().and_then(|r| r.upstream.clone());
        up.map_or(0, |u| u.split(',').count())
    }
}

struct Shared {
    stop: AtomicBool,
    phase: AtomicU8,
    sent: AtomicUsize,
    hits: Mutex<Vec<Hit>>,
}

/// The client threads at work.
pub struct Load {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Start `n` threads in the namespace of `ns` sending to `to`, in phase 1.
pub fn start(ns: &OwnedFd, to: SocketAddr, n: usize) -> Load {
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        phase: AtomicU8::new(1),
        sent: AtomicUsize::new(0),
        hits: Mutex::new(Vec::new()),
    });
    let threads = (0..n)
        .map(|_| {
            let (s, fd) = (shared.clone(), ns.try_clone().expect("dup"));
            std::thread::spawn(move || {
                // SAFETY: setns on an open namespace descriptor: this thread only.
                if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return;
                }
                while !s.stop.load(Ordering::SeqCst) {
                    let phase = s.phase.load(Ordering::SeqCst);
                    let reply = http::get(to, Duration::from_secs(2));
                    let hit = Hit { phase, at: proclab::clock::lab_ns(), reply };
                    s.hits.lock().unwrap_or_else(|p| p.into_inner()).push(hit);
                    s.sent.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    Load { shared, threads }
}

impl Load {
    /// Requests sent so far (answered or not).
    pub fn sent(&self) -> usize {
        self.shared.sent.load(Ordering::SeqCst)
    }

    /// From now on, requests belong to `phase`.
    pub fn phase(&self, phase: u8) {
        self.shared.phase.store(phase, Ordering::SeqCst);
    }

    /// The requests of `phase` so far.
    pub fn hits(&self, phase: u8) -> Vec<Hit> {
        let all = self.shared.hits.lock().unwrap_or_else(|p| p.into_inner());
        all.iter().filter(|h| h.phase == phase).cloned().collect()
    }

    /// Wait (bounded by `within`, lab time) until `n` requests were sent in all.
    pub fn until_sent(&self, n: usize, within: Duration) -> bool {
        proclab::procfacts::poll_until(within, || (self.sent() >= n).then_some(()))
            .is_some()
    }

    /// Stop the threads and wait for them (each request is bounded).
    pub fn stop(self) -> Vec<Hit> {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.threads.into_iter().for_each(|t| drop(t.join()));
        let all = self.shared.hits.lock().unwrap_or_else(|p| p.into_inner());
        all.clone()
    }
}

/// The requests of one phase: how many, who answered how many, how many failed (no
/// 200 came back), how many nginx had to try on a second upstream.
#[derive(Debug, Default, serde::Serialize)]
pub struct Tally {
    pub sent: usize,
    pub per: BTreeMap<String, usize>,
    pub failed: usize,
    pub retried: usize,
}

impl Tally {
    /// Requests answered by processes whose name starts with `host`.
    pub fn on(&self, host: &str) -> usize {
        self.per.iter().filter(|(k, _)| k.starts_with(host)).map(|(_, v)| v).sum()
    }
}

/// Tally the hits of `phase`; `who` names each pid ("h1 web.1").
pub fn tally(hits: &[Hit], phase: u8, who: &[(i32, String)]) -> Tally {
    let mut t = Tally::default();
    for h in hits.iter().filter(|h| h.phase == phase) {
        t.sent += 1;
        t.retried += usize::from(h.tries() > 1);
        let Some(pid) = h.pid() else {
            t.failed += 1;
            continue;
        };
        let name = who
            .iter()
            .find(|w| w.0 == pid)
            .map_or(format!("pid {pid}?"), |w| w.1.clone());
        *t.per.entry(name).or_insert(0) += 1;
    }
    t
}
