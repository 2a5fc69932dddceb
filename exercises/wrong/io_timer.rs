//! A wrong solution of io-timer: each wait is a deadline in `timers`, but epoll_wait still
//! sleeps for ever (timeout -1): a deadline is noticed only when some socket wakes the
//! loop, and the last requests are answered late, or not at all. The check `on_time`
//! fails.

use proclab::say_as;
use std::collections::{BTreeSet, HashMap};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

const LISTENER: u64 = u64::MAX;

/// Add `fd` to the epoll set `ep`, reported while readable, with `data` in its events.
fn watch(ep: RawFd, fd: RawFd, data: u64) {
    let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: data };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call.
    let r = unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) };
    assert!(r == 0, "epoll_ctl: {}", std::io::Error::last_os_error());
}

/// A client: its connection, what it has sent, and how long it asked to wait.
struct Client {
    conn: TcpStream,
    line: Vec<u8>,
    wait_ms: u64,
}

/// Read what `c` has sent, without blocking. Some(true) once its whole line is in (its
/// wait is in `wait_ms`), Some(false) if more is to come, None if it is gone.
fn read_request(c: &mut Client) -> Option<bool> {
    let mut buf = [0u8; 512];
    loop {
        match c.conn.read(&mut buf) {
            Ok(0) => return None, // the client closed
            Ok(n) => c.line.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Some(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
        if let Some(end) = c.line.iter().position(|&b| b == b'\n') {
            let text = String::from_utf8_lossy(&c.line[..end]).to_string();
            let ms = text.trim().strip_prefix("wait ").and_then(|m| m.parse().ok());
            c.wait_ms = ms.unwrap_or(0).min(10_000);
            return Some(true);
        }
    }
}

/// Answer `c` (then drop it: that closes the connection).
fn answer(c: &mut Client) {
    let _ = c.conn.write_all(format!("waited {}\n", c.wait_ms).as_bytes());
}

pub fn main() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("O_NONBLOCK");
    say_as!("server", "listening on {}", listener.local_addr().expect("address"));
    // SAFETY: epoll_create1 has no preconditions.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    watch(ep, listener.as_raw_fd(), LISTENER);
    let mut clients: HashMap<u64, Client> = HashMap::new();
    // (when, which client): the deadlines, the earliest first.
    let mut timers: BTreeSet<(Instant, u64)> = BTreeSet::new();
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
    loop {
        // For ever: a deadline is seen only when a socket wakes the loop.
        let timeout: i32 = -1;
        // SAFETY: the kernel writes at most 64 events into the array.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), 64, timeout) };
        for ev in &events[..n.max(0) as usize] {
            let data = ev.u64; // (copied out of a packed struct)
            if data == LISTENER {
                while let Ok((conn, _)) = listener.accept() {
                    conn.set_nonblocking(true).expect("O_NONBLOCK");
                    let fd = conn.as_raw_fd();
                    watch(ep, fd, fd as u64);
                    let c = Client { conn, line: Vec::new(), wait_ms: 0 };
                    clients.insert(fd as u64, c);
                }
                continue;
            }
            let Some(c) = clients.get_mut(&data) else { continue };
            match read_request(c) {
                Some(true) => {
                    let when = Instant::now() + Duration::from_millis(c.wait_ms);
                    timers.insert((when, data)); // no sleep: a deadline in the set
                }
                Some(false) => {} // the rest of the line comes later
                None => drop(clients.remove(&data)),
            }
        }
        // Answer every client whose deadline has passed.
        let now = Instant::now();
        while let Some(&(when, fd)) = timers.first() {
            if when > now {
                break;
            }
            timers.pop_first();
            if let Some(mut c) = clients.remove(&fd) {
                answer(&mut c);
            }
        }
    }
}
