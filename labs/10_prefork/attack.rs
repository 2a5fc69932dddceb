//! The demo's attackers and its normal client, on 127.0.0.1 and bounded in count and time:
//! idle connections that never send a byte, slowloris connections that send one byte of a
//! head that never ends every 200 ms, and a probe that starts a request every 10 ms and
//! times it. Cut connections are opened again, as an attacker does. One thread of the
//! lab, non-blocking sockets and poll(2).

use crate::bind_and_fork::loopback;
use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType};
use proclab::Deadline;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// A new probe every this often.
pub const PROBE_EVERY: Duration = Duration::from_millis(10);
/// A probe not answered 200 within this has failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// A slowloris connection sends one byte every this often (5 bytes a second).
pub const SLOW_EVERY: Duration = Duration::from_millis(200);
/// What a slowloris connection sends, a byte at a time: a head whose last field never ends.
const SLOW_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
const PROBE: &[u8] =
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

/// What to run.
#[derive(Clone, Copy)]
pub struct Plan {
    /// Where the attackers connect.
    pub port: u16,
    /// Where the probe connects (nginx's port when it is in front).
    pub probe_port: u16,
    pub idle: usize,
    pub slow: usize,
    /// How long the attack and the probes last.
    pub run: Duration,
}

/// A slowloris connection the server cut, as the attacker saw it.
#[derive(Clone, Debug)]
pub struct Cut {
    /// From connect to the server's close.
    pub lived: Duration,
    /// The status of the answer, if one came (408).
    pub status: Option<u16>,
    /// What the 408 said: how long the worker had read this head.
    pub held_ms: Option<u64>,
}

/// What the attack and the probe saw.
#[derive(Default)]
pub struct Outcome {
    /// Each probe's time to a whole 200 answer; None: it failed.
    pub probes: Vec<Option<Duration>>,
    /// How long each idle connection the server closed had lived.
    pub idle_cut: Vec<Duration>,
    pub slow_cut: Vec<Cut>,
    /// Connections the attackers opened in all, and connects that failed.
    pub opened: usize,
    pub failed: usize,
}

impl Outcome {
    /// Probes answered 200 in time, in percent.
    pub fn share(&self) -> f64 {
        let ok = self.probes.iter().filter(|p| p.is_some()).count();
        100.0 * ok as f64 / self.probes.len().max(1) as f64
    }
    /// The 99th percentile of the probes' times, a failure counting as endless: None if
    /// it is a failure.
    pub fn p99(&self) -> Option<Duration> {
        let mut t: Vec<Duration> =
            self.probes.iter().map(|p| p.unwrap_or(Duration::MAX)).collect();
        t.sort();
        let at = ((t.len().max(1) - 1) as f64 * 0.99).round() as usize;
        t.get(at).copied().filter(|d| *d != Duration::MAX)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Idle,
    Slow,
    Probe,
}

struct Conn {
    fd: OwnedFd,
    role: Role,
    born: Instant,
    up: bool,
    sent: usize,
    next: Instant,
    got: Vec<u8>,
}

/// A non-blocking connect to 127.0.0.1:`port` (it completes later: POLLOUT).
fn open(port: u16, role: Role) -> nix::Result<Conn> {
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = socket::socket(AddressFamily::Inet, SockType::Stream, flags, None)?;
    let (addr, len) = loopback(port);
    let at = (&raw const addr).cast();
    // SAFETY: `at` points to a live sockaddr_in of `len` bytes.
    let rc = unsafe { libc::connect(fd.as_raw_fd(), at, len) };
    if rc < 0 && Errno::last() != Errno::EINPROGRESS {
        return Err(Errno::last());
    }
    let now = Instant::now();
    Ok(Conn { fd, role, born: now, up: false, sent: 0, next: now, got: Vec::new() })
}

/// Run `plan`: the attackers in a thread of their own; once they are connected, the probe
/// in this one for `plan.run`; then the attackers leave. Two threads, so that the probe's
/// times are not the attackers' own work. Bounded: at most 20 times the attackers are
/// opened, and the attack ends 5 s after the probe's time in any case.
pub fn run(plan: Plan) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let (up, is_up) = mpsc::channel();
    let flag = stop.clone();
    let attackers = std::thread::spawn(move || drive(plan, Some((up, flag))));
    let _ = is_up.recv_timeout(Duration::from_secs(2)); // every attacker connected
    let mut out = drive(plan, None);
    stop.store(true, Ordering::SeqCst);
    let attack = attackers.join().unwrap_or_default();
    (out.idle_cut, out.slow_cut) = (attack.idle_cut, attack.slow_cut);
    (out.opened, out.failed) = (attack.opened, attack.failed);
    out
}

/// One side of `run`: the attackers (with the channel to say they are up and the flag that
/// stops them), or the probe.
fn drive(
    plan: Plan,
    attack: Option<(mpsc::Sender<()>, Arc<AtomicBool>)>,
) -> Outcome {
    let mut out = Outcome::default();
    let mut conns: Vec<Conn> = Vec::new();
    let end = Deadline::after(plan.run);
    let hard_end = Deadline::after(plan.run + Duration::from_secs(5));
    let cap = 20 * (plan.idle + plan.slow);
    let (mut next_probe, mut said_up) = (Instant::now(), false);
    loop {
        let now = Instant::now();
        let attacking = match &attack {
            Some((_, stop)) => !stop.load(Ordering::SeqCst) && !hard_end.expired(),
            None => false,
        };
        let probing = attack.is_none() && !end.expired();
        if !attacking && !probing && conns.iter().all(|c| c.role != Role::Probe) {
            return out; // the attackers' sockets close here
        }
        if attacking {
            // Keep the attack at full strength.
            for (role, n) in [(Role::Idle, plan.idle), (Role::Slow, plan.slow)] {
                let have = conns.iter().filter(|c| c.role == role).count();
                for _ in have..n.max(have) {
                    if out.opened == cap {
                        break;
                    }
                    out.opened += 1;
                    match open(plan.port, role) {
                        Ok(c) => conns.push(c),
                        Err(_) => out.failed += 1,
                    }
                }
            }
            if let Some((up, _)) = attack.as_ref().filter(|_| !said_up) {
                if conns.iter().all(|c| c.up) || hard_end.remaining() < plan.run {
                    said_up = up.send(()).is_ok();
                }
            }
        }
        while probing && next_probe <= now {
            next_probe += PROBE_EVERY;
            match open(plan.probe_port, Role::Probe) {
                Ok(c) => conns.push(c),
                Err(_) => out.probes.push(None),
            }
        }
        for c in conns.iter_mut().filter(|c| c.up && c.role == Role::Slow) {
            if c.next <= now {
                let b = SLOW_HEAD.get(c.sent).copied().unwrap_or(b'x');
                c.sent += send(c, &[b]);
                c.next = now + SLOW_EVERY;
            }
        }
        let mut fds: Vec<libc::pollfd> = conns
            .iter()
            .map(|c| {
                let events = if c.up { libc::POLLIN } else { libc::POLLOUT };
                libc::pollfd { fd: c.fd.as_raw_fd(), events, revents: 0 }
            })
            .collect();
        // SAFETY: `fds` is a live array of pollfds of that length.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 5) };
        let mut done = Vec::new();
        for (i, (c, p)) in conns.iter_mut().zip(&fds).enumerate() {
            let timed_out =
                c.role == Role::Probe && c.born.elapsed() > PROBE_TIMEOUT;
            if timed_out || (p.revents != 0 && !step(c, p.revents)) {
                done.push(i);
            }
        }
        for i in done.into_iter().rev() {
            let c = conns.swap_remove(i);
            record(&mut out, &c, attacking);
        }
    }
}

/// Send what we can without blocking; how many bytes went.
fn send(c: &Conn, bytes: &[u8]) -> usize {
    socket::send(c.fd.as_raw_fd(), bytes, socket::MsgFlags::MSG_NOSIGNAL)
        .unwrap_or(0)
}

/// A connection had an event: connected (it sends its first bytes), or bytes or the end
/// came. False once it is over.
fn step(c: &mut Conn, revents: i16) -> bool {
    if !c.up {
        let err = socket::getsockopt(&c.fd.as_fd(), socket::sockopt::SocketError);
        if err != Ok(0) {
            return false; // refused, or reset in the handshake
        }
        c.up = true;
        match c.role {
            Role::Probe => c.sent = send(c, PROBE),
            Role::Slow => c.sent = send(c, &SLOW_HEAD[..1]),
            Role::Idle => {}
        }
        c.next = Instant::now() + SLOW_EVERY;
        return true;
    }
    if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
        return true;
    }
    let mut buf = [0u8; 1024];
    match socket::recv(c.fd.as_raw_fd(), &mut buf, socket::MsgFlags::MSG_DONTWAIT) {
        Ok(0) | Err(_) => false, // the end (EOF, or a reset)
        Ok(n) => {
            if c.got.len() < 4096 {
                c.got.extend_from_slice(&buf[..n]);
            }
            true
        }
    }
}

/// Book what a finished connection saw. An attacker closed by us at the end is no cut.
fn record(out: &mut Outcome, c: &Conn, attacking: bool) {
    let lived = c.born.elapsed();
    if !c.up && c.role != Role::Probe {
        out.failed += 1; // refused or reset before it was up: no cut
        return;
    }
    let status = std::str::from_utf8(c.got.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse::<u16>().ok());
    match c.role {
        Role::Probe => {
            let ok = status == Some(200) && lived <= PROBE_TIMEOUT;
            out.probes.push(ok.then_some(lived));
        }
        Role::Idle if attacking => out.idle_cut.push(lived),
        Role::Slow if attacking => {
            let text = String::from_utf8_lossy(&c.got);
            let held_ms = text
                .split(" bytes in ")
                .nth(1)
                .and_then(|t| t.split(" ms").next())
                .and_then(|ms| ms.parse().ok());
            out.slow_cut.push(Cut { lived, status, held_ms });
        }
        Role::Idle | Role::Slow => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_and_p99_count_a_failure_as_endless() {
        let ms = Duration::from_millis;
        let mut o = Outcome {
            probes: (1..=100).map(|i| Some(ms(i))).collect(),
            ..Default::default()
        };
        assert_eq!((o.share(), o.p99()), (100.0, Some(ms(99))));
        o.probes[0] = None;
        assert_eq!(
            (o.share(), o.p99()),
            (99.0, Some(ms(100))),
            "one failure in 100"
        );
        o.probes[1] = None;
        assert_eq!(o.p99(), None, "two: the 99th percentile is a failure");
    }
}
