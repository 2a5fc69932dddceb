//! HTTP/1.1 for the prefork server: a request-head parser and a response writer that never
//! allocate and only make raw system calls, so a forked worker may use them. The part of
//! the server that is not about processes, with its unit tests.

use crate::fields::{parse_fields, Framing, FIELD_MAX};
use crate::request_line::{parse_line, Method, Target, LINE_MAX};
use crate::wire::{send_all, SliceWriter};
use std::fmt::Write as _;
use std::os::fd::RawFd;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Conn {
    /// HTTP/1.1 default: keep the connection.
    Keep,
    /// HTTP/1.0 with `Connection: keep-alive`: keep it and say so.
    KeepSay,
    Close,
}

/// A parsed request head.
#[derive(Debug)]
pub struct Req<'a> {
    pub method: Method,
    /// HEAD: answer with the head only.
    pub head_only: bool,
    /// The path (from an absolute-form target too); `*` for `OPTIONS *`, empty for CONNECT.
    pub path: &'a [u8],
    pub query: &'a [u8],
    pub conn: Conn,
    /// How long the body is, which the server reads (or refuses with 413) before answering.
    pub body: Framing,
    /// `Expect: 100-continue`: the client waits for a 100 before it sends the body.
    pub expect_continue: bool,
}

/// Where a request head ends in a buffer, or why it is refused before it ends.
#[derive(Debug, PartialEq)]
pub enum Scan {
    /// Not complete yet: read more.
    Partial,
    /// The head is the first this many bytes (its blank line included).
    Complete(usize),
    /// Refused now: a bare LF (400), a request line over the limit (414), a field line
    /// over the limit or a head larger than the buffer (431).
    Bad(u16),
}

/// Look at what has arrived of a head (`full`: the buffer has no room left). Answers as soon
/// as the bytes decide, so a client with bare LF line ends is answered at once.
pub fn scan(buf: &[u8], full: bool) -> Scan {
    // One empty line before the request line is ignored (RFC 9112 §2.2).
    let mut start = if buf.starts_with(b"\r\n") { 2 } else { 0 };
    let mut first = true;
    while let Some(lf) = buf[start..].iter().position(|&b| b == b'\n') {
        let end = start + lf;
        if end == 0 || buf[end - 1] != b'\r' {
            return Scan::Bad(400); // a line must end in CRLF
        }
        let len = end - 1 - start;
        if first && len > LINE_MAX {
            return Scan::Bad(414);
        }
        if !first && len > FIELD_MAX {
            return Scan::Bad(431);
        }
        if !first && len == 0 {
            return Scan::Complete(end + 1);
        }
        (first, start) = (false, end + 1);
    }
    let open = buf.len() - start; // the line still arriving, perhaps with its CR
    match (first, full) {
        (true, _) if open > LINE_MAX + 1 => Scan::Bad(414),
        (true, true) => Scan::Bad(414),
        (false, _) if open > FIELD_MAX + 1 || full => Scan::Bad(431),
        _ => Scan::Partial,
    }
}

/// Parse a complete request head (as `scan` found it): the request line (request_line.rs),
/// then the field lines (fields.rs). Err is the status to answer with, before closing.
pub fn parse(head: &[u8]) -> Result<Req<'_>, u16> {
    let head = head.strip_prefix(b"\r\n").unwrap_or(head);
    let bare_lf = head
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'));
    let text = head.strip_suffix(b"\r\n\r\n").ok_or(400u16)?;
    if bare_lf {
        return Err(400);
    }
    let mut lines =
        text.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let line = parse_line(lines.next().unwrap_or_default())?;
    let f = parse_fields(lines, line.http11)?;
    let conn = match (line.http11, f.close, f.keep_alive) {
        (_, true, _) => Conn::Close,
        (true, false, _) => Conn::Keep,
        (false, false, true) => Conn::KeepSay, // HTTP/1.0 keep-alive, as it was used
        (false, false, false) => Conn::Close,
    };
    let (path, query) = match line.target {
        Target::Origin { path, query } => (path, query),
        Target::Absolute { path, query, .. } => (path, query), // its host over Host's
        Target::Asterisk => (&b"*"[..], &b""[..]),
        Target::Authority(_) => (&b""[..], &b""[..]),
    };
    Ok(Req {
        method: line.method,
        head_only: line.method == Method::Head,
        path,
        query,
        conn,
        body: f.body,
        expect_continue: f.expect_continue && f.body != Framing::None,
    })
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

/// The reason phrase of a status (RFC 9110 §15).
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// Write the whole response, with `headers` (whole lines, CRLF included, such as
/// `Allow: GET\r\n`) after the standard ones; false if the client went away or stalled.
pub fn respond(
    fd: RawFd,
    out: &mut [u8],
    status: u16,
    headers: &[u8],
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
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    w.put(headers);
    let _ = write!(w, "{conn_line}\r\n");
    if !head_only {
        w.put(body);
    }
    let n = w.len;
    send_all(fd, &out[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(head: &[u8]) -> u16 {
        parse(head).map_or_else(|s| s, |_| 200)
    }

    #[test]
    fn parses_a_request_head() {
        let r = parse(b"GET /work?ms=20&x=1 HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, close\r\n\r\n").unwrap();
        assert_eq!(r.path, b"/work");
        assert_eq!(param(r.query, b"ms"), Some(20));
        assert_eq!(param(r.query, b"x"), Some(1));
        assert_eq!(param(r.query, b"y"), None);
        assert!(r.conn == Conn::Close && !r.head_only);
        assert_eq!(param(b"ms=99999999999999", b"ms"), None, "too long");
    }

    #[test]
    fn http_1_0_keep_alive_as_it_was_used() {
        let r =
            parse(b"HEAD / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n").unwrap();
        assert!(r.conn == Conn::KeepSay && r.head_only);
        assert_eq!(parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().conn, Conn::Close);
        let r = parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(r.conn, Conn::Keep);
        let r = parse(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(r.conn, Conn::Keep, "HTTP/1.2 as 1.1");
    }

    #[test]
    fn one_leading_empty_line_is_ignored() {
        let head = b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(scan(head, false), Scan::Complete(head.len()));
        assert_eq!(status(head), 200);
        assert_eq!(
            status(b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            400,
            "only one"
        );
    }

    #[test]
    fn a_bare_lf_is_refused_as_soon_as_it_arrives() {
        assert_eq!(scan(b"GET / HTTP/1.1\n", false), Scan::Bad(400));
        assert_eq!(scan(b"GET / HTTP/1.1\r\nHost: a\n", false), Scan::Bad(400));
        assert_eq!(scan(b"GET / HTTP/1.1\r\nHost: a\r\n", false), Scan::Partial);
        assert_eq!(status(b"GET / HTTP/1.1\nHost: a\r\n\r\n"), 400);
    }

    #[test]
    fn limits_are_answered_before_the_head_ends() {
        let mut line = b"GET /".to_vec();
        line.resize(LINE_MAX + 2, b'a');
        assert_eq!(scan(&line, false), Scan::Bad(414), "no CRLF needed to know");
        let mut field = b"GET / HTTP/1.1\r\nX: ".to_vec();
        field.resize(16 + FIELD_MAX + 2, b'v');
        assert_eq!(scan(&field, false), Scan::Bad(431));
        assert_eq!(
            scan(b"GET / HTTP/1.1\r\nX: y", true),
            Scan::Bad(431),
            "buffer full"
        );
        assert_eq!(scan(b"GET / HT", true), Scan::Bad(414));
    }

    #[test]
    fn method_target_version_and_fields_come_from_their_modules() {
        let r = parse(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!((r.method, r.path), (Method::Options, &b"*"[..]));
        let r = parse(b"POST http://h/up HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n").unwrap();
        assert_eq!(
            (r.path, r.body, r.expect_continue),
            (&b"/up"[..], Framing::Length(3), true)
        );
        assert_eq!(status(b"GARBAGE\r\n\r\n"), 400);
        assert_eq!(status(b"BREW / HTTP/1.1\r\nHost: a\r\n\r\n"), 501);
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 400, "1.1 needs Host");
    }
}
