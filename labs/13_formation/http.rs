//! Just enough HTTP for the web processes and the lab: answer one request with a line
//! of text (raw system calls and a stack buffer, so a forked daemon may use it too), and
//! a bounded client that reads the answer and nginx's `X-Upstream` header.

use proclab::narrate::{write_all_fd, StackBuf};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::RawFd;
use std::time::Duration;

/// Read a request head from `fd` (up to 4 KiB, for at most a second), answer `200`
/// with `body`, and close `fd`. Async-signal-safe.
pub fn answer(fd: RawFd, body: &[u8]) {
    let mut head = [0u8; 4096];
    let mut got = 0;
    while got < head.len() {
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd; a read into the unused part of a live buffer.
        let n = unsafe {
            if libc::poll(&mut p, 1, 1000) <= 0 {
                break; // a client that says nothing gets an answer anyway
            }
            libc::read(fd, head[got..].as_mut_ptr().cast(), head.len() - got)
        };
        if n <= 0 {
            break;
        }
        got += n as usize;
        if head[..got].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let mut reply = StackBuf::new();
    let _ = write!(
        reply,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    write_all_fd(fd, reply.as_bytes());
    write_all_fd(fd, body);
    // SAFETY: the connection is ours; nothing uses the descriptor after this.
    unsafe { libc::close(fd) };
}

/// What a `GET /` got back.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// nginx's `$upstream_addr`: every upstream it tried, comma-separated.
    pub upstream: Option<String>,
}

impl Reply {
    /// The pid the body names (`web.1 pid 4321 on h1`).
    pub fn pid(&self) -> Option<i32> {
        let mut words = self.body.split_whitespace();
        words.find(|&w| w == "pid")?;
        words.next()?.parse().ok()
    }
}

/// `GET /` on `addr`, HTTP/1.0, bounded by `timeout` for the connect and for the
/// answer. Err names what failed.
pub fn get(addr: SocketAddr, timeout: Duration) -> Result<Reply, String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout)).map_err(|e| format!("{e}"))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: formation\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| format!("read: {e}"))?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no complete answer")?;
    let status =
        head.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or("no status")?;
    let upstream =
        head.lines().find_map(|l| l.strip_prefix("X-Upstream: ")).map(String::from);
    Ok(Reply { status, body: body.to_string(), upstream })
}

/// The pid that answers `GET /` on 127.0.0.1:`port`, asking again until one does or
/// `within` (lab time) has passed: a process that has just started may not listen yet.
pub fn answered_by(port: u16, within: Duration) -> Option<i32> {
    let ask =
        || get(([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?.pid();
    proclab::procfacts::poll_until(within, ask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::IntoRawFd;

    #[test]
    fn one_request_one_answer() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (c, _) = l.accept().unwrap();
            answer(c.into_raw_fd(), b"web.1 pid 42 on -\n");
        });
        let r = get(addr, Duration::from_secs(2)).unwrap();
        t.join().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.pid(), Some(42));
        assert_eq!(r.upstream, None);
    }
}
