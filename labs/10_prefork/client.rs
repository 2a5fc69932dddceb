//! The demo's side of the wire and of /proc: a bounded HTTP client of its own (one request,
//! a background load, a keep-alive connection) and what /proc says about a worker.

use crate::wire::find;
use nix::unistd::Pid;
use proclab::{clock, procfacts};
use std::io::{Read, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::ops::RangeBounds;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A 200 answer.
pub fn ok(r: &Resp) -> bool {
    matches!(r, Ok((200, _)))
}

/// True if `pid` is blocked in system call `nr` (/proc/PID/syscall), or, where that file
/// is not readable (it needs ptrace rights), if it sleeps in a kernel function whose name
/// contains `wchan` (/proc/PID/wchan).
pub fn blocked_in(pid: Pid, nr: i64, wchan: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/syscall")) {
        Ok(s) => {
            s.split_whitespace().next().and_then(|n| n.parse().ok()) == Some(nr)
        }
        Err(_) => procfacts::wchan(pid.as_raw()).is_some_and(|w| w.contains(wchan)),
    }
}

/// True if `pid` sleeps waiting for a connection: in accept4, or (the test switch
/// `epoll_exclusive`) in epoll_pwait on the listening socket.
pub fn waiting_on_socket(pid: Pid) -> bool {
    blocked_in(pid, libc::SYS_accept4, "accept")
        || blocked_in(pid, libc::SYS_epoll_pwait, "ep_poll")
}

/// The descriptor `pid` sleeps in accept4 on: the first argument in /proc/PID/syscall
/// (`288 0x3 0x0 ...` on x86-64), None unless it is blocked in accept4 now.
pub fn accept_fd(pid: Pid) -> Option<RawFd> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    let mut words = s.split_whitespace();
    if words.next()?.parse::<i64>().ok()? != libc::SYS_accept4 {
        return None;
    }
    let arg = words.next()?.trim_start_matches("0x");
    RawFd::from_str_radix(arg, 16).ok()
}

/// The inode of the socket `fd` (`socket:[INODE]` in /proc/PID/fd).
pub fn socket_inode(pid: Pid, fd: RawFd) -> Option<String> {
    let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    Some(link.display().to_string())
}

/// Up to 10 requests on one keep-alive connection: how many were answered, and the pids
/// that answered them, repeats merged.
pub fn keepalive_workers(port: u16) -> (usize, Vec<i32>) {
    let mut ka = Vec::new();
    if let Ok(mut s) = connect(port) {
        for _ in 0..10 {
            if write!(s, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
                break;
            }
            match read_response(&mut s) {
                Ok((200, b)) => ka.push(worker_of(&b).unwrap_or(0)),
                _ => break,
            }
        }
    }
    let answered = ka.len();
    ka.dedup();
    (answered, ka)
}

/// What a load saw: when each request started, and its result.
pub type Log = Vec<(Instant, Resp)>;

/// The results of the requests of `log` started in `when` (`..kill`, `kill..dead`, `dead..`).
pub fn started(log: &Log, when: impl RangeBounds<Instant>) -> Vec<&Resp> {
    log.iter().filter(|(t, _)| when.contains(t)).map(|(_, r)| r).collect()
}

/// A stream of requests from a background thread (at most 20000), until `finish`.
pub struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    log: Arc<Mutex<Log>>,
    thread: JoinHandle<()>,
}

impl Load {
    pub fn start(port: u16) -> Load {
        let (stop, done, log): (
            Arc<AtomicBool>,
            Arc<AtomicUsize>,
            Arc<Mutex<Log>>,
        ) = Default::default();
        let (s, d, l) = (stop.clone(), done.clone(), log.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) && d.load(Ordering::SeqCst) < 20_000 {
                if clock::is_paused() {
                    // A --step prompt: no request starts while the master is paused.
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                let t = Instant::now();
                let r = get(port, "/");
                l.lock().expect("log").push((t, r));
                d.fetch_add(1, Ordering::SeqCst);
            }
        });
        Load { stop, done, log, thread }
    }

    /// Requests finished so far.
    pub fn done(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    /// Wait (at most 10 s) until `at_least` requests have finished.
    pub fn wait_done(&self, at_least: usize) {
        procfacts::poll_until(Duration::from_secs(10), || {
            (self.done() >= at_least).then_some(())
        });
    }

    /// Stop the stream and return its log.
    pub fn finish(self) -> Log {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("load thread");
        std::mem::take(&mut *self.log.lock().expect("log"))
    }
}

/// One response: status and body.
pub type Resp = Result<(u16, String), String>;

/// Read one response (status line, headers, Content-Length body) from `s`.
pub fn read_response(s: &mut TcpStream) -> Resp {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 || buf.len() > 65_536 {
            return Err("connection closed before a response".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status =
        head.get(9..12).and_then(|s| s.parse().ok()).ok_or("bad status line")?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed in the body".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((
        status,
        String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string(),
    ))
}

/// A connection to 127.0.0.1:`port`, every step with a timeout.
pub fn connect(port: u16) -> Result<TcpStream, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(15))).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
    Ok(s)
}

/// One request on a new connection (`Connection: close`), bounded in time.
pub fn get(port: u16, path: &str) -> Resp {
    let mut s = connect(port)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    read_response(&mut s)
}

/// The worker pid in a body `worker 4213 ...`.
pub fn worker_of(body: &str) -> Option<i32> {
    body.split_whitespace().nth(1)?.parse().ok()
}
