//! The lab's clients (plumbing): a bounded closed loop of M connections, each sending a
//! request, waiting for its answer and sending the next (one connection per request,
//! `Connection: close`); slow clients that trickle their request in; idle connections;
//! and what a load measured. Only 127.0.0.1, every call bounded in time.

use crate::app::Cost;
use crate::server::loopback;
use crate::wire::find;
use proclab::measure::fmt_duration;
use proclab::{Deadline, Summary};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// How long past its window a load waits for the answers in flight: a queue of 16
/// requests of 10 ms on a tenth of a core takes 1.6 s.
pub const GRACE: Duration = Duration::from_secs(5);

/// A client stops at the end of its window, or after this many requests.
pub const MAX_PER_CLIENT: u64 = 100_000;

/// A load: how many clients, what they ask for, for how long.
#[derive(Clone)]
pub struct Spec {
    pub clients: usize,
    /// Clients that send their request one byte every `slow_step`.
    pub slow: usize,
    pub slow_step: Duration,
    pub window: Duration,
    /// How long past the window a request may still take before it counts as an error.
    pub grace: Duration,
    pub cost: Cost,
}

/// What the normal clients of a load saw (the slow ones are only counted).
#[derive(Clone, Debug, Default)]
pub struct Measured {
    /// Answers per second: all of them, over the time from the start to the last one
    /// (no request starts after the window; those in flight then are waited for).
    pub rps: f64,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    pub ok: u64,
    /// Requests refused, cut, or not answered within the window + the grace.
    pub errors: u64,
    pub slow_ok: u64,
}

impl Measured {
    /// `1234.5`, `10.21 ms`, `12.00 ms`, `0`: cells of a table.
    pub fn cells(&self) -> [String; 4] {
        let d = |d: Option<Duration>| d.map_or("-".into(), fmt_duration);
        [
            format!("{:.1}", self.rps),
            d(self.p50),
            d(self.p99),
            self.errors.to_string(),
        ]
    }
}

/// The request of a load: one per connection.
pub fn request(cost: Cost) -> Vec<u8> {
    let (c, w) = (cost.cpu_ms, cost.wait_ms);
    format!(
        "GET /?cpu_ms={c}&wait_ms={w} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Connection: close\r\n\r\n"
    )
    .into_bytes()
}

#[derive(Default)]
struct Tally {
    answers: u64,
    errors: u64,
    lat: Vec<Duration>,
    last: Option<Instant>,
}

/// Run `spec` against 127.0.0.1:`port`; `during` runs on this thread at 80% of the
/// window, while the clients are busy (to read /proc then).
pub fn run<T>(port: u16, spec: &Spec, during: impl FnOnce() -> T) -> (Measured, T) {
    let (end, t0) = (Deadline::after(spec.window), Instant::now());
    let req = std::sync::Arc::new(request(spec.cost));
    let start = |slow: bool| {
        let (req, step, grace) = (req.clone(), spec.slow_step, spec.grace);
        std::thread::spawn(move || {
            client(port, &req, end, grace, slow.then_some(step))
        })
    };
    let normal: Vec<_> = (0..spec.clients).map(|_| start(false)).collect();
    let slow: Vec<_> = (0..spec.slow).map(|_| start(true)).collect();
    std::thread::sleep(spec.window.mul_f64(0.8));
    let seen = during();
    let mut all = Tally::default();
    for t in normal.into_iter().filter_map(|h| h.join().ok()) {
        all.answers += t.answers;
        all.errors += t.errors;
        all.lat.extend(t.lat);
        all.last = all.last.max(t.last);
    }
    let slow_ok = slow.into_iter().filter_map(|h| h.join().ok()).map(|t| t.answers);
    let summary = (!all.lat.is_empty()).then(|| Summary::of(&all.lat));
    let took = all.last.map_or(spec.window, |l| l - t0);
    let m = Measured {
        rps: all.answers as f64 / took.as_secs_f64().max(1e-3),
        p50: summary.map(|s| s.median),
        p99: summary.map(|s| s.p99),
        ok: all.lat.len() as u64,
        errors: all.errors,
        slow_ok: slow_ok.sum(),
    };
    (m, seen)
}

/// One client: request, answer, request... until the window ends.
fn client(
    port: u16,
    req: &[u8],
    end: Deadline,
    grace: Duration,
    slow: Option<Duration>,
) -> Tally {
    let mut t = Tally::default();
    while !end.expired() && t.answers + t.errors < MAX_PER_CLIENT {
        let sent = Instant::now();
        match exchange(port, req, slow, end, grace) {
            Ok(true) => {
                t.lat.push(sent.elapsed());
                (t.answers, t.last) = (t.answers + 1, Some(Instant::now()));
            }
            Ok(false) => break, // a slow client stopped at the end of the window
            Err(_) => {
                t.errors += 1;
                std::thread::sleep(Duration::from_millis(5)); // no tight loop of errors
            }
        }
    }
    t
}

/// One request on a new connection; Ok(false) if the window ended while trickling.
fn exchange(
    port: u16,
    req: &[u8],
    slow: Option<Duration>,
    end: Deadline,
    grace: Duration,
) -> Result<bool, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_nodelay(true);
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    match slow {
        None => s.write_all(req).map_err(|e| format!("send: {e}"))?,
        Some(step) => {
            for b in req {
                if end.expired() {
                    return Ok(false);
                }
                s.write_all(&[*b]).map_err(|e| format!("send: {e}"))?;
                std::thread::sleep(step);
            }
        }
    }
    let wait = end.remaining() + grace;
    let _ = s.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
    answer(&mut s).map(|_| true)
}

/// Read one answer: a 200 with the whole body of its Content-Length; the body.
pub fn answer(s: &mut TcpStream) -> Result<String, String> {
    let (mut buf, mut chunk) = (Vec::with_capacity(256), [0u8; 512]);
    loop {
        if let Some(h) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..h]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or("an answer without Content-Length")?;
            if buf.len() >= h + 4 + len {
                let body = String::from_utf8_lossy(&buf[h + 4..h + 4 + len]);
                return match head.starts_with("http/1.1 200 ") {
                    true => Ok(body.into_owned()),
                    false => Err(head.lines().next().unwrap_or("").to_string()),
                };
            }
        }
        let n = s.read(&mut chunk).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                "no answer within the window".to_string()
            }
            _ => format!("recv: {e}"),
        })?;
        if n == 0 {
            return Err("closed before the answer".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One request, for a look at the answer: (status line's code, body, time taken).
pub fn get(port: u16, cost: Cost) -> Result<(String, Duration), String> {
    let t = Instant::now();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(15)));
    s.write_all(&request(cost)).map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let body =
        text.split_once("\r\n\r\n").map_or("", |(_, b)| b).trim().to_string();
    match text.starts_with("HTTP/1.1 200 ") {
        true => Ok((body, t.elapsed())),
        false => Err(text.lines().next().unwrap_or("no answer").to_string()),
    }
}

/// Open up to `n` connections and send nothing, as clients between two requests;
/// the ones connected by `by`.
pub fn idle(port: u16, n: usize, by: Deadline) -> Vec<OwnedFd> {
    let addr = loopback(port);
    let len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let mut pending: Vec<OwnedFd> = Vec::new();
    for _ in 0..n {
        let kind = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: socket and a non-blocking connect (EINPROGRESS) on a live address.
        let fd = unsafe {
            let fd = libc::socket(libc::AF_INET, kind, 0);
            if fd < 0 {
                break; // EMFILE: as many as we could
            }
            libc::connect(fd, (&raw const addr).cast(), len);
            OwnedFd::from_raw_fd(fd)
        };
        pending.push(fd);
    }
    let mut done: Vec<OwnedFd> = Vec::new();
    while !pending.is_empty() && !by.expired() {
        let mut polls: Vec<libc::pollfd> = pending.iter().map(pollout).collect();
        // SAFETY: `polls` is a live array of that many pollfds.
        unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, 50) };
        let (ready, rest): (Vec<_>, Vec<_>) =
            pending.into_iter().zip(&polls).partition(|(_, p)| p.revents != 0);
        done.extend(ready.into_iter().map(|(fd, _)| fd).filter(connected));
        pending = rest.into_iter().map(|(fd, _)| fd).collect();
    }
    done
}

fn pollout(fd: &OwnedFd) -> libc::pollfd {
    let fd: RawFd = std::os::fd::AsRawFd::as_raw_fd(fd);
    libc::pollfd { fd, events: libc::POLLOUT, revents: 0 }
}

/// True if a non-blocking connect on `fd` succeeded (SO_ERROR is 0).
fn connected(fd: &OwnedFd) -> bool {
    let (mut err, mut len) = (0i32, size_of::<i32>() as libc::socklen_t);
    let fd = std::os::fd::AsRawFd::as_raw_fd(fd);
    // SAFETY: SO_ERROR into a live int of `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut err).cast(),
            &mut len,
        )
    };
    r == 0 && err == 0
}
