//! The header fields of a request (RFC 9112 §5, RFC 9110 §5): each line `name: value`, the
//! name a token, the value visible characters only; Host exactly once and valid; the body's
//! framing from Content-Length or Transfer-Encoding, never both. No heap. Unit tests below.

use crate::request_line::tchar;

/// The longest field line we take (smaller than gunicorn's 8190: our whole head is 8 KiB);
/// a longer one gets 431.
pub const FIELD_MAX: usize = 4094;
/// At most this many field lines (gunicorn's and Apache's default); more get 431.
pub const FIELDS_MAX: usize = 100;
/// The largest request body we read, as nginx's `client_max_body_size` (1 MiB); a larger
/// one gets 413 Content Too Large.
pub const BODY_MAX: u64 = 1 << 20;

/// How the body's length is known (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// What the fields say that the server uses.
#[derive(Debug, PartialEq)]
pub struct Fields {
    pub host: bool,
    pub close: bool,
    pub keep_alive: bool,
    pub body: Framing,
    pub expect_continue: bool,
}

/// Parse the field lines of a head (each without its CRLF). `http11`: the request's version.
pub fn parse_fields<'a>(
    lines: impl Iterator<Item = &'a [u8]>,
    http11: bool,
) -> Result<Fields, u16> {
    let mut f = Fields {
        host: false,
        close: false,
        keep_alive: false,
        body: Framing::None,
        expect_continue: false,
    };
    let (mut hosts, mut lengths, mut encodings, mut n) = (0, 0, 0, 0);
    let (mut te, mut te_bad, mut te_unknown) = (false, false, false);
    for line in lines {
        n += 1;
        if line.len() > FIELD_MAX || n > FIELDS_MAX {
            return Err(431);
        }
        let (name, value) = split_field(line)?;
        let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
        if is(b"host") {
            hosts += 1;
            f.host = valid_host(value);
        } else if is(b"content-length") {
            lengths += 1;
            f.body = Framing::Length(content_length(value)?);
        } else if is(b"transfer-encoding") {
            encodings += 1;
            for coding in list(value) {
                // chunked must come last and once (RFC 9112 §6.1); we know no other.
                te_bad |= te;
                te = coding.eq_ignore_ascii_case(b"chunked");
                te_unknown |= !te;
            }
        } else if is(b"connection") {
            f.close |= list(value).any(|t| t.eq_ignore_ascii_case(b"close"));
            f.keep_alive |=
                list(value).any(|t| t.eq_ignore_ascii_case(b"keep-alive"));
        } else if is(b"expect") {
            if !value.eq_ignore_ascii_case(b"100-continue") {
                return Err(417);
            }
            f.expect_continue = http11; // HTTP/1.0 ignores it (RFC 9110 §10.1.1)
        }
    }
    // Host: once, valid and not empty, and required in HTTP/1.1 (RFC 9112 §3.2).
    if hosts > 1 || (hosts == 1 && !f.host) || (http11 && hosts == 0) {
        return Err(400);
    }
    if lengths > 1 {
        return Err(400); // two Content-Length lines: which one frames the body?
    }
    if encodings > 0 {
        // Both CL and TE, or TE in HTTP/1.0: a framing the peers may read differently,
        // the way request smuggling works (RFC 9112 §6.1, §6.3).
        if lengths > 0 || !http11 || !te || te_bad {
            return Err(400);
        }
        if te_unknown {
            return Err(501); // a transfer coding we do not implement (gzip, ...)
        }
        f.body = Framing::Chunked;
    }
    if let Framing::Length(n) = f.body {
        if n > BODY_MAX {
            return Err(413);
        }
    }
    Ok(f)
}

/// `name: value` with the value trimmed of spaces and tabs; 400 if it is not a field line.
pub fn split_field(line: &[u8]) -> Result<(&[u8], &[u8]), u16> {
    let colon = line.iter().position(|&b| b == b':').ok_or(400u16)?;
    let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
    // No space before the colon, no obs-fold (a line that starts with a space).
    if name.is_empty() || !name.iter().all(|&b| tchar(b)) {
        return Err(400);
    }
    // field-vchar: visible ASCII and obs-text, spaces and tabs between (RFC 9110 §5.5);
    // NUL, BEL, DEL and the other controls are refused.
    let ok = |b: u8| b == b' ' || b == b'\t' || (b > 0x20 && b != 0x7f);
    if !value.iter().all(|&b| ok(b)) {
        return Err(400);
    }
    Ok((name, value))
}

/// The elements of a comma-separated list, trimmed; empty ones skipped (RFC 9110 §5.6.1).
fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(|t| t.trim_ascii()).filter(|t| !t.is_empty())
}

/// `Content-Length: 1*DIGIT` (at most 18 digits, so it fits; no sign, no list).
fn content_length(v: &[u8]) -> Result<u64, u16> {
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return Err(400);
    }
    Ok(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// `uri-host [":" port]` (RFC 9110 §7.2, RFC 3986 §3.2.2): an IP literal in brackets, or a
/// reg-name of unreserved, sub-delims and %HH; not empty, no userinfo.
pub fn valid_host(v: &[u8]) -> bool {
    let (host, port) = match v.first() {
        Some(b'[') => match v.iter().position(|&b| b == b']') {
            Some(end) => (&v[..=end], &v[end + 1..]),
            None => return false,
        },
        _ => match v.iter().rposition(|&b| b == b':') {
            Some(c) => (&v[..c], &v[c..]),
            None => (v, &b""[..]),
        },
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => {
            digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    };
    let host_ok = match host.first() {
        Some(b'[') => {
            host.len() > 2
                && host[1..host.len() - 1]
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
        _ => reg_name(host),
    };
    !host.is_empty() && host_ok && port_ok
}

/// unreserved, sub-delims and `%HH` (RFC 3986 §3.2.2).
fn reg_name(h: &[u8]) -> bool {
    let mut i = 0;
    while i < h.len() {
        let b = h[i];
        if b == b'%' {
            let hex = h.get(i + 1..i + 3);
            if !hex.is_some_and(|x| x.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b)) {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(head: &[u8], http11: bool) -> Result<Fields, u16> {
        parse_fields(head.split(|&b| b == b'\n').filter(|l| !l.is_empty()), http11)
    }
    fn status(head: &[u8]) -> u16 {
        fields(head, true).map_or_else(|s| s, |_| 200)
    }

    #[test]
    fn host_once_valid_and_required_in_1_1() {
        assert_eq!(status(b"Host: a.example:80"), 200);
        assert_eq!(status(b"Host: a\nHost: b"), 400, "two Hosts");
        assert_eq!(status(b"Host: a\nhost: a"), 400, "two Hosts, same value");
        assert_eq!(status(b"Host:"), 400, "empty");
        assert_eq!(status(b"Host: a b"), 400, "a space");
        assert_eq!(status(b"Host: u@h"), 400, "userinfo");
        assert_eq!(status(b"Host: h:99999x"), 400, "bad port");
        assert_eq!(status(b"Host: [::1]:8080"), 200);
        assert_eq!(status(b"Host: %41b"), 200, "pct-encoded");
        assert_eq!(status(b"Accept: */*"), 400, "no Host in HTTP/1.1");
        assert!(fields(b"Accept: */*", false).is_ok(), "HTTP/1.0 may omit it");
    }

    #[test]
    fn a_field_name_is_a_token_before_the_colon() {
        assert_eq!(status(b"Host: a\nX y: z"), 400);
        assert_eq!(status(b"Host : a"), 400, "space before the colon");
        assert_eq!(status(b"Host: a\n folded"), 400, "obs-fold");
        assert_eq!(status(b"Host: a\nno colon"), 400);
        assert_eq!(status(b"Host: a\n: empty name"), 400);
    }

    #[test]
    fn control_characters_in_a_value_are_400() {
        assert_eq!(status(b"Host: a\nX: a\x00b"), 400, "NUL");
        assert_eq!(status(b"Host: a\nX: a\x07b"), 400, "BEL");
        assert_eq!(status(b"Host: a\nX: a\x7fb"), 400, "DEL");
        assert_eq!(status(b"Host: a\nX: a\rb"), 400, "a bare CR");
        assert_eq!(
            status(b"Host: a\nX: a\tb \xe9"),
            200,
            "tab and obs-text are fine"
        );
    }

    #[test]
    fn a_long_field_or_too_many_fields_is_431() {
        let mut long = b"Host: a\nX: ".to_vec();
        long.resize(8 + FIELD_MAX, b'v');
        assert_eq!(status(&long), 200);
        long.push(b'v');
        assert_eq!(status(&long), 431);
        let many: Vec<u8> = (0..FIELDS_MAX).flat_map(|_| *b"X: y\n").collect();
        assert_eq!(status(&[b"Host: a\n".as_slice(), &many].concat()), 431);
    }

    #[test]
    fn content_length_frames_the_body_up_to_the_limit() {
        assert_eq!(
            fields(b"Host: a\nContent-Length: 5", true).unwrap().body,
            Framing::Length(5)
        );
        assert_eq!(status(b"Host: a\nContent-Length: 1048577"), 413);
        assert_eq!(status(b"Host: a\nContent-Length: -1"), 400);
        assert_eq!(status(b"Host: a\nContent-Length: 5, 5"), 400, "a list");
        assert_eq!(status(b"Host: a\nContent-Length: 5\nContent-Length: 5"), 400);
        assert_eq!(status(b"Host: a\nContent-Length: 99999999999999999999"), 400);
    }

    #[test]
    fn chunked_last_and_once_other_codings_501() {
        let f = fields(b"Host: a\nTransfer-Encoding: Chunked", true).unwrap();
        assert_eq!(f.body, Framing::Chunked);
        assert_eq!(status(b"Host: a\nTransfer-Encoding: gzip, chunked"), 501);
        assert_eq!(
            status(b"Host: a\nTransfer-Encoding: gzip"),
            400,
            "not chunked last"
        );
        assert_eq!(status(b"Host: a\nTransfer-Encoding: chunked, gzip"), 400);
        assert_eq!(status(b"Host: a\nTransfer-Encoding: chunked, chunked"), 400);
        let split = b"Host: a\nTransfer-Encoding: gzip\nTransfer-Encoding: chunked";
        assert_eq!(status(split), 501, "one list over two lines");
        assert!(
            fields(b"Transfer-Encoding: chunked", false).is_err(),
            "TE in HTTP/1.0"
        );
    }

    #[test]
    fn content_length_with_transfer_encoding_is_refused() {
        let both = b"Host: a\nContent-Length: 3\nTransfer-Encoding: chunked";
        assert_eq!(status(both), 400);
    }

    #[test]
    fn connection_and_expect() {
        let f = fields(
            b"Host: a\nConnection: Keep-Alive, close\nExpect: 100-continue",
            true,
        );
        let f = f.unwrap();
        assert!(f.close && f.keep_alive && f.expect_continue);
        assert_eq!(status(b"Host: a\nExpect: teapot"), 417);
    }
}
