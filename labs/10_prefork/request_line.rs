//! The request line of RFC 9112 §3: `method SP request-target SP HTTP-version`, each part
//! checked as the RFC says, with the status a server answers when one is wrong. No heap:
//! everything borrows from the request buffer. Its unit tests are below, one per rule.

/// The longest request line we parse, as gunicorn's `--limit-request-line` (4094 bytes);
/// a longer one gets 414 URI Too Long (RFC 9112 §3).
pub const LINE_MAX: usize = 4094;

/// The methods of RFC 9110 §9 and PATCH (RFC 5789). Any other token gets 501.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
}

impl Method {
    fn from(token: &[u8]) -> Option<Method> {
        use Method::*;
        // Methods are case-sensitive (RFC 9110 §9.1): `get` is not GET.
        let all = [
            (&b"GET"[..], Get),
            (b"HEAD", Head),
            (b"POST", Post),
            (b"PUT", Put),
            (b"DELETE", Delete),
            (b"CONNECT", Connect),
            (b"OPTIONS", Options),
            (b"TRACE", Trace),
            (b"PATCH", Patch),
        ];
        all.iter().find(|(t, _)| *t == token).map(|&(_, m)| m)
    }
}

/// The four forms of request-target (RFC 9112 §3.2).
#[derive(Debug, PartialEq)]
pub enum Target<'a> {
    /// `/path?query`
    Origin { path: &'a [u8], query: &'a [u8] },
    /// `http://host:port/path?query`: the host comes from here, not from Host.
    Absolute { authority: &'a [u8], path: &'a [u8], query: &'a [u8] },
    /// `host:port`, for CONNECT only.
    Authority(&'a [u8]),
    /// `*`, for OPTIONS only.
    Asterisk,
}

/// A parsed request line.
#[derive(Debug)]
pub struct Line<'a> {
    pub method: Method,
    pub target: Target<'a>,
    /// HTTP/1.1 or a later 1.x (treated as 1.1, RFC 9110 §2.5); false for HTTP/1.0.
    pub http11: bool,
}

/// A token character (RFC 9110 §5.6.2): what a method or a field name is made of.
pub fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parse one request line (without its CRLF).
pub fn parse_line(line: &[u8]) -> Result<Line<'_>, u16> {
    if line.len() > LINE_MAX {
        return Err(414);
    }
    let mut parts = line.split(|&b| b == b' ');
    let (method, target, version) =
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(m), Some(t), Some(v), None) => (m, t, v),
            _ => return Err(400), // one single space between the three parts
        };
    // HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 §2.3).
    let http11 = match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            if *major != b'1' {
                return Err(505); // another major version: not this protocol
            }
            *minor != b'0' // 1.1, and 1.2 to 1.9 as 1.1
        }
        _ => return Err(400),
    };
    if method.is_empty() || !method.iter().all(|&b| tchar(b)) {
        return Err(400);
    }
    let method = Method::from(method).ok_or(501u16)?; // a token we do not know
    Ok(Line { method, target: parse_target(method, target)?, http11 })
}

/// The request-target: its form must fit the method, and it is visible ASCII only (no
/// fragment: a `#` is never sent, RFC 9112 §3.2).
fn parse_target(method: Method, t: &[u8]) -> Result<Target<'_>, u16> {
    if t.is_empty() || !t.iter().all(|&b| b.is_ascii_graphic() && b != b'#') {
        return Err(400);
    }
    let (path, query) = split_query(t);
    match (method, t[0]) {
        (Method::Connect, _) => match authority_port(t) {
            true => Ok(Target::Authority(t)),
            false => Err(400),
        },
        (Method::Options, _) if t == b"*" => Ok(Target::Asterisk),
        (_, b'/') => Ok(Target::Origin { path, query }),
        _ => absolute(t),
    }
}

/// `http://authority[/path][?query]` (or https), the scheme case-insensitive.
fn absolute(t: &[u8]) -> Result<Target<'_>, u16> {
    let colon = t.iter().position(|&b| b == b':').ok_or(400u16)?;
    let scheme = &t[..colon];
    let http = scheme.eq_ignore_ascii_case(b"http")
        || scheme.eq_ignore_ascii_case(b"https");
    let rest = t[colon + 1..].strip_prefix(b"//").ok_or(400u16)?;
    if !http {
        return Err(400);
    }
    let end = rest.iter().position(|&b| b == b'/' || b == b'?');
    let (authority, tail) = rest.split_at(end.unwrap_or(rest.len()));
    if !crate::fields::valid_host(authority) {
        return Err(400); // empty, or userinfo@ (RFC 9110 §4.2.4), or not a host
    }
    let (path, query) = split_query(tail);
    let path = if path.is_empty() { &b"/"[..] } else { path };
    Ok(Target::Absolute { authority, path, query })
}

/// CONNECT's `host:port`, the port required.
fn authority_port(t: &[u8]) -> bool {
    let port = t.rsplit(|&b| b == b':').next().unwrap_or(b"");
    t.contains(&b':')
        && !port.is_empty()
        && port.len() < t.len() - 1
        && crate::fields::valid_host(t)
}

fn split_query(t: &[u8]) -> (&[u8], &[u8]) {
    match t.iter().position(|&b| b == b'?') {
        Some(q) => (&t[..q], &t[q + 1..]),
        None => (t, &b""[..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(line: &[u8]) -> u16 {
        parse_line(line).map_or_else(|s| s, |_| 200)
    }

    #[test]
    fn origin_form_with_a_query() {
        let l = parse_line(b"GET /work?ms=5 HTTP/1.1").unwrap();
        assert_eq!(l.method, Method::Get);
        assert!(l.http11);
        assert_eq!(l.target, Target::Origin { path: b"/work", query: b"ms=5" });
    }

    #[test]
    fn absolute_form_is_accepted() {
        let l = parse_line(b"GET http://example.com:8080/a?b=1 HTTP/1.1").unwrap();
        let want = Target::Absolute {
            authority: b"example.com:8080",
            path: b"/a",
            query: b"b=1",
        };
        assert_eq!(l.target, want);
        let l = parse_line(b"HEAD HTTPS://h HTTP/1.1").unwrap();
        assert_eq!(
            l.target,
            Target::Absolute { authority: b"h", path: b"/", query: b"" }
        );
        assert_eq!(status(b"GET http:///x HTTP/1.1"), 400, "no host");
        assert_eq!(status(b"GET http://u@h/ HTTP/1.1"), 400, "userinfo");
        assert_eq!(status(b"GET ftp://h/ HTTP/1.1"), 400, "not http");
    }

    #[test]
    fn asterisk_and_authority_forms_only_with_their_methods() {
        assert_eq!(
            parse_line(b"OPTIONS * HTTP/1.1").unwrap().target,
            Target::Asterisk
        );
        assert_eq!(status(b"GET * HTTP/1.1"), 400);
        let l = parse_line(b"CONNECT h:443 HTTP/1.1").unwrap();
        assert_eq!(l.target, Target::Authority(b"h:443"));
        assert_eq!(status(b"CONNECT /x HTTP/1.1"), 400);
        assert_eq!(status(b"CONNECT h: HTTP/1.1"), 400, "no port");
    }

    #[test]
    fn one_space_between_three_parts() {
        assert_eq!(status(b"GET  / HTTP/1.1"), 400);
        assert_eq!(status(b"GET / HTTP/1.1 "), 400);
        assert_eq!(status(b"GET /"), 400);
        assert_eq!(status(b"GET\t/ HTTP/1.1"), 400);
    }

    #[test]
    fn a_later_minor_version_is_1_1_and_another_major_is_505() {
        assert!(parse_line(b"GET / HTTP/1.2").unwrap().http11);
        assert!(!parse_line(b"GET / HTTP/1.0").unwrap().http11);
        assert_eq!(status(b"GET / HTTP/2.0"), 505);
        assert_eq!(status(b"GET / HTTP/0.9"), 505);
        assert_eq!(status(b"GET / http/1.1"), 400, "case-sensitive");
        assert_eq!(status(b"GET / HTTP/1.10"), 400, "one digit each");
    }

    #[test]
    fn an_unknown_method_is_501_and_a_non_token_400() {
        assert_eq!(status(b"BREW / HTTP/1.1"), 501);
        assert_eq!(status(b"get / HTTP/1.1"), 501, "methods are case-sensitive");
        assert_eq!(status(b"GE(T / HTTP/1.1"), 400);
        assert_eq!(parse_line(b"PATCH / HTTP/1.1").unwrap().method, Method::Patch);
    }

    #[test]
    fn a_target_is_visible_ascii_without_a_fragment() {
        assert_eq!(status(b"GET /a#b HTTP/1.1"), 400);
        assert_eq!(status(b"GET /\x7f HTTP/1.1"), 400);
        assert_eq!(status(b"GET nopath HTTP/1.1"), 400);
    }

    #[test]
    fn a_request_line_over_the_limit_is_414() {
        let mut long = b"GET /".to_vec();
        long.resize(LINE_MAX - 9, b'a');
        long.extend_from_slice(b" HTTP/1.1");
        assert_eq!(long.len(), LINE_MAX);
        assert_eq!(status(&long), 200);
        long.insert(5, b'a');
        assert_eq!(status(&long), 414);
    }
}
