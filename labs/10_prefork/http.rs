//! HTTP/1.1 for the prefork server: a request-head parser and a response writer that never
//! allocate and only make raw system calls, so a forked worker may use them. The part of
//! the server that is not about processes, with its unit tests.

use nix::errno::Errno;
use std::fmt::{self, Write as _};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// Where `needle` starts in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Before closing on an error: stop sending, then read and drop what the client still
/// sends (bounded), because closing with unread bytes makes the kernel send a reset, which
/// can destroy our error response before the client reads it.
pub fn linger(fd: RawFd, scratch: &mut [u8]) {
    // SAFETY: shutdown, poll and recv on our connection, into a live buffer.
    unsafe {
        libc::shutdown(fd, libc::SHUT_WR); // our FIN goes after the response
        let deadline = Instant::now() + Duration::from_millis(500);
        let mut drained = 0;
        while Instant::now() < deadline && drained < 1 << 20 {
            let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            if libc::poll(&mut p, 1, 100) <= 0 {
                continue; // nothing yet (or a signal): bounded by the deadline
            }
            let n = libc::recv(
                fd,
                scratch.as_mut_ptr().cast(),
                scratch.len(),
                libc::MSG_DONTWAIT,
            ); // discard
            if n <= 0 {
                return; // EOF: the client closed its side
            }
            drained += n as usize;
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
pub enum Conn {
    /// HTTP/1.1 default: keep the connection.
    Keep,
    /// HTTP/1.0 with `Connection: keep-alive`: keep it and say so.
    KeepSay,
    Close,
}

/// A parsed request head.
pub struct Req<'a> {
    /// HEAD: answer with the head only.
    pub head_only: bool,
    pub path: &'a [u8],
    pub query: &'a [u8],
    pub conn: Conn,
}

/// Parse a request head: `GET /path?query HTTP/1.1`, then `Name: value` lines. Anything
/// else is a 400 (and a body, which this server does not take).
pub fn parse(head: &[u8]) -> Result<Req<'_>, u16> {
    // Without the blank line's CRLF, every line ends with CR; the last piece is empty.
    let mut lines = head[..head.len() - 2].split(|&b| b == b'\n');
    let first = lines.next().ok_or(400u16)?;
    let first = first.strip_suffix(b"\r".as_slice()).ok_or(400u16)?; // lines end with CRLF
    let mut parts = first.split(|&b| b == b' ');
    let (method, target, version) =
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(m), Some(t), Some(v), None) => (m, t, v),
            _ => return Err(400),
        };
    if method.is_empty() || !method.iter().all(u8::is_ascii_uppercase) {
        return Err(400);
    }
    if target.first() != Some(&b'/') || !target.iter().all(|b| b.is_ascii_graphic())
    {
        return Err(400);
    }
    let http11 = match version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        _ => return Err(400),
    };
    let (mut host, mut close, mut keep) = (false, false, false);
    for line in lines.filter(|l| !l.is_empty()) {
        let line = line.strip_suffix(b"\r".as_slice()).ok_or(400u16)?; // a bare LF is not HTTP
        let colon = line.iter().position(|&b| b == b':').ok_or(400u16)?;
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.is_empty()
            || !name.iter().all(|&b| {
                b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
            })
        {
            return Err(400);
        }
        if name.eq_ignore_ascii_case(b"host") {
            host = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            close |= has_token(value, b"close");
            keep |= has_token(value, b"keep-alive");
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || (name.eq_ignore_ascii_case(b"content-length") && value != b"0")
        {
            return Err(400); // no request bodies here
        }
    }
    if http11 && !host {
        return Err(400); // HTTP/1.1 requires Host
    }
    let conn = match (http11, close, keep) {
        (_, true, _) => Conn::Close,
        (true, false, _) => Conn::Keep,
        (false, false, true) => Conn::KeepSay,
        (false, false, false) => Conn::Close,
    };
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(q) => (&target[..q], &target[q + 1..]),
        None => (target, &b""[..]),
    };
    match method {
        b"GET" | b"HEAD" => {
            Ok(Req { head_only: method == b"HEAD", path, query, conn })
        }
        _ => Err(405),
    }
}

/// True if the comma-separated header value contains `token` (case-insensitive).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// `name=N` in a query string, if present and a number.
pub fn param(query: &[u8], name: &[u8]) -> Option<u64> {
    query.split(|&b| b == b'&').find_map(|kv| {
        let v = kv.strip_prefix(name)?.strip_prefix(b"=".as_slice())?;
        if v.is_empty() || v.len() > 12 || !v.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
    })
}

/// The reason phrase of a status.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

/// Write the whole response; false if the client went away or stalled.
pub fn respond(
    fd: RawFd,
    out: &mut [u8],
    status: u16,
    body: &[u8],
    conn: Conn,
    head_only: bool,
) -> bool {
    let mut w = SliceWriter::new(out);
    let conn_line = match conn {
        Conn::Keep => "",
        Conn::KeepSay => "Connection: keep-alive\r\n",
        Conn::Close => "Connection: close\r\n",
    };
    let _ = write!(
        w,
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{conn_line}\r\n",
        reason(status),
        body.len()
    );
    if !head_only {
        w.put(body);
    }
    let n = w.len;
    send_all(fd, &out[..n])
}

/// Send all of `bytes` (bounded: 5 s); false if the client went away or stalled.
pub fn send_all(fd: RawFd, mut bytes: &[u8]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe a live slice.
        let n = unsafe {
            libc::send(
                fd,
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        }; // no SIGPIPE if the client is gone
        if n >= 0 {
            bytes = &bytes[n as usize..];
            continue;
        }
        match Errno::last() {
            Errno::EINTR => {}
            Errno::EAGAIN if Instant::now() < deadline => {
                let mut p = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut p, 1, 500) }; // a slow reader: wait, bounded
            }
            _ => return false,
        }
    }
    true
}

/// A `fmt::Write` into a fixed slice (no heap); longer text is cut.
pub struct SliceWriter<'a> {
    buf: &'a mut [u8],
    /// Bytes written so far.
    pub len: usize,
}

impl<'a> SliceWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        SliceWriter { buf, len: 0 }
    }
    pub fn put(&mut self, b: &[u8]) {
        let n = b.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
    }
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.put(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(head: &[u8]) -> Result<(), u16> {
        parse(head).map(|_| ())
    }

    #[test]
    fn parses_a_request_head() {
        let r = parse(b"GET /work?ms=20&x=1 HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, close\r\n\r\n").unwrap();
        assert_eq!(r.path, b"/work");
        assert_eq!(param(r.query, b"ms"), Some(20));
        assert_eq!(param(r.query, b"x"), Some(1));
        assert_eq!(param(r.query, b"y"), None);
        assert!(r.conn == Conn::Close && !r.head_only);
        let r =
            parse(b"HEAD / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n").unwrap();
        assert!(r.conn == Conn::KeepSay && r.head_only);
        assert!(parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().conn == Conn::Close);
        assert!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().conn == Conn::Keep
        );
    }

    #[test]
    fn rejects_what_is_not_http() {
        assert_eq!(status(b"GARBAGE\r\n\r\n"), Err(400));
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), Err(400), "1.1 needs Host");
        assert_eq!(
            status(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Err(400),
            "two spaces"
        );
        assert_eq!(status(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"), Err(400));
        assert_eq!(status(b"get / HTTP/1.1\r\nHost: a\r\n\r\n"), Err(400));
        assert_eq!(status(b"GET / HTTP/1.1\nHost: a\r\n\r\n"), Err(400), "bare LF");
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
            Err(400),
            "space before colon"
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"),
            Err(400)
        );
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: a\r\n\r\n"), Err(405));
        assert_eq!(param(b"ms=99999999999999", b"ms"), None, "too long");
    }

    #[test]
    fn writes_into_a_fixed_buffer() {
        let mut buf = [0u8; 8];
        let mut w = SliceWriter::new(&mut buf);
        let _ = write!(w, "worker {}", 123456);
        assert_eq!(w.len, 8, "cut at the end of the buffer");
        assert_eq!(&buf, b"worker 1");
    }
}
