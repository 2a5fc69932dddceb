//! A request body, framed by Content-Length or by the chunked coding (RFC 9112 §7.1): chunk
//! sizes in hex (either case, leading zeros allowed up to a limit), chunk extensions (parsed,
//! ignored), trailer fields (checked, ignored). Fed in pieces as they arrive; keeps no data,
//! only its length and a checksum. No heap. Unit tests below, one per rule.

use crate::fields::{split_field, Framing, BODY_MAX, FIELDS_MAX};
use crate::request_line::tchar;

/// The longest chunk-size line (with its extensions) or trailer line we take.
pub const CHUNK_LINE_MAX: usize = 1024;
/// At most this many hex digits in a chunk size, leading zeros included: 400 beyond.
pub const SIZE_DIGITS_MAX: usize = 16;

/// What a piece of input did.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// The body goes on: feed more.
    More,
    /// The body ended after this many bytes of the piece (the rest is the next request).
    Done(usize),
    /// Malformed (400), too large (413), or trailers too large (431).
    Bad(u16),
}

enum St {
    Length(u64),
    Size,
    Data(u64),
    DataEnd,
    Trailer,
}

/// A body being read: what is left of it, and what came so far.
pub struct Body {
    st: St,
    /// Data bytes so far (chunk framing excluded).
    pub len: u64,
    /// FNV-1a of the data bytes, so a client can check what arrived.
    pub fnv: u64,
    line: [u8; CHUNK_LINE_MAX],
    line_len: usize,
    trailers: usize,
}

impl Body {
    pub fn new(framing: Framing) -> Body {
        let st = match framing {
            Framing::None => St::Length(0),
            Framing::Length(n) => St::Length(n),
            Framing::Chunked => St::Size,
        };
        let fnv = 0xcbf2_9ce4_8422_2325;
        Body {
            st,
            len: 0,
            fnv,
            line: [0; CHUNK_LINE_MAX],
            line_len: 0,
            trailers: 0,
        }
    }

    /// Take the next piece of the body.
    pub fn feed(&mut self, input: &[u8]) -> Step {
        let mut i = 0;
        loop {
            match self.st {
                St::Length(0) => return Step::Done(i),
                St::Length(left) | St::Data(left) => {
                    let n = (input.len() - i).min(left as usize);
                    self.data(&input[i..i + n]);
                    i += n;
                    self.st = match self.st {
                        St::Length(_) => St::Length(left - n as u64),
                        _ if left == n as u64 => St::DataEnd,
                        _ => St::Data(left - n as u64),
                    };
                    if i == input.len() && !matches!(self.st, St::Length(0)) {
                        return Step::More;
                    }
                }
                St::Size | St::DataEnd | St::Trailer => {
                    // A line: gather it up to its LF, then judge it whole.
                    let Some(lf) = input[i..].iter().position(|&b| b == b'\n')
                    else {
                        return self.gather(&input[i..]).unwrap_or(Step::More);
                    };
                    if let Some(bad) = self.gather(&input[i..i + lf]) {
                        return bad;
                    }
                    i += lf + 1;
                    let line = &self.line[..self.line_len];
                    let Some(line) = line.strip_suffix(b"\r") else {
                        return Step::Bad(400); // a bare LF
                    };
                    let next = self.line_done(line.len());
                    self.line_len = 0;
                    match next {
                        Ok(true) => return Step::Done(i),
                        Ok(false) => {}
                        Err(s) => return Step::Bad(s),
                    }
                }
            }
        }
    }

    fn data(&mut self, d: &[u8]) {
        for &b in d {
            self.fnv = (self.fnv ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        self.len += d.len() as u64;
    }

    /// Add to the line being gathered; an error once it is longer than allowed.
    fn gather(&mut self, part: &[u8]) -> Option<Step> {
        if self.line_len + part.len() > CHUNK_LINE_MAX {
            let status = if matches!(self.st, St::Trailer) { 431 } else { 400 };
            return Some(Step::Bad(status));
        }
        self.line[self.line_len..self.line_len + part.len()].copy_from_slice(part);
        self.line_len += part.len();
        None
    }

    /// A whole line (`n` bytes, CRLF removed) in the current state; true at the body's end.
    fn line_done(&mut self, n: usize) -> Result<bool, u16> {
        let line = &self.line[..n];
        match self.st {
            St::DataEnd if line.is_empty() => self.st = St::Size,
            St::DataEnd => return Err(400), // chunk data longer than its size
            St::Size => {
                let size = chunk_size(line)?;
                if self.len + size > BODY_MAX {
                    return Err(413);
                }
                self.st = if size == 0 { St::Trailer } else { St::Data(size) };
            }
            St::Trailer if line.is_empty() => return Ok(true),
            St::Trailer => {
                self.trailers += 1;
                if self.trailers > FIELDS_MAX {
                    return Err(431);
                }
                split_field(line)?; // a trailer is a field line; we keep none
            }
            St::Length(_) | St::Data(_) => unreachable!("not a line"),
        }
        Ok(false)
    }
}

/// `chunk-size [chunk-ext]`: hex digits, then `; name[=value]` pairs with optional
/// whitespace around `;` and `=`, each value a token or a quoted string.
fn chunk_size(line: &[u8]) -> Result<u64, u16> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > SIZE_DIGITS_MAX {
        return Err(400);
    }
    let size = line[..digits].iter().fold(0u64, |n, &d| {
        let v = (d as char).to_digit(16).unwrap_or(0);
        n.saturating_mul(16).saturating_add(u64::from(v))
    });
    let mut rest = &line[digits..];
    while !rest.is_empty() {
        rest = skip_ws(rest).strip_prefix(b";").ok_or(400u16)?;
        rest = skip_ws(rest);
        let name = rest.iter().take_while(|&&b| tchar(b)).count();
        if name == 0 {
            return Err(400);
        }
        rest = skip_ws(&rest[name..]);
        if let Some(v) = rest.strip_prefix(b"=") {
            let v = skip_ws(v);
            rest = &v[ext_value(v).ok_or(400u16)?..];
        }
    }
    Ok(size)
}

/// `r` without the spaces and tabs it starts with (BWS).
fn skip_ws(r: &[u8]) -> &[u8] {
    let n = r.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    &r[n..]
}

/// The length of a token or a quoted-string at the start of `v`.
fn ext_value(v: &[u8]) -> Option<usize> {
    if v.first() != Some(&b'"') {
        let n = v.iter().take_while(|&&b| tchar(b)).count();
        return (n > 0).then_some(n);
    }
    let mut i = 1;
    while i < v.len() {
        match v[i] {
            b'"' => return Some(i + 1),
            b'\\'
                if v.get(i + 1)
                    .is_some_and(|&c| c == b'\t' || c >= b' ' && c != 0x7f) =>
            {
                i += 2
            }
            b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff if v[i] != b'\\' => i += 1,
            _ => return None,
        }
    }
    None // no closing quote
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `input` in pieces of `piece` bytes; the step and the data length at the end.
    fn read(framing: Framing, input: &[u8], piece: usize) -> (Step, u64) {
        let mut b = Body::new(framing);
        let mut at = 0;
        for chunk in input.chunks(piece.max(1)) {
            match b.feed(chunk) {
                Step::More => at += chunk.len(),
                Step::Done(n) => return (Step::Done(at + n), b.len),
                bad => return (bad, b.len),
            }
        }
        (Step::More, b.len)
    }
    fn chunked(input: &[u8]) -> (Step, u64) {
        read(Framing::Chunked, input, 3)
    }

    #[test]
    fn content_length_takes_exactly_its_bytes() {
        let (s, n) = read(Framing::Length(5), b"helloGET /", 4);
        assert_eq!((s, n), (Step::Done(5), 5), "the rest is the next request");
        assert_eq!(read(Framing::Length(0), b"GET", 1), (Step::Done(0), 0));
        assert_eq!(read(Framing::Length(9), b"short", 2), (Step::More, 5));
    }

    #[test]
    fn chunks_then_the_last_chunk_then_the_end() {
        let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET";
        assert_eq!(chunked(body), (Step::Done(body.len() - 3), 11));
        let mut b = Body::new(Framing::Chunked);
        assert_eq!(b.feed(b"3\r\nabc\r\n0\r\n\r\n"), Step::Done(13));
        assert_eq!(b.fnv, 0xe71f_a219_0541_574b, "FNV-1a of abc");
    }

    #[test]
    fn sizes_in_either_case_with_leading_zeros_up_to_the_limit() {
        let mut body = b"000000000000000A\r\n0123456789\r\n0\r\n\r\n".to_vec();
        assert_eq!(chunked(&body).1, 10);
        assert_eq!(chunked(b"a\r\n0123456789\r\n0\r\n\r\n").1, 10);
        body.insert(0, b'0'); // 17 digits
        assert_eq!(chunked(&body).0, Step::Bad(400));
        assert_eq!(chunked(b"x\r\n").0, Step::Bad(400));
    }

    #[test]
    fn chunk_extensions_are_parsed_and_ignored() {
        let body = b"3;a=1 ; b = \"x \\\" y\";c\r\nabc\r\n0;last\r\n\r\n";
        assert_eq!(chunked(body), (Step::Done(body.len()), 3));
        assert_eq!(chunked(b"3;\r\nabc\r\n").0, Step::Bad(400), "no name");
        assert_eq!(chunked(b"3;a=\"open\r\nabc\r\n").0, Step::Bad(400));
        assert_eq!(chunked(b"3 x\r\nabc\r\n").0, Step::Bad(400));
    }

    #[test]
    fn trailers_are_checked_and_ignored() {
        let body = b"3\r\nabc\r\n0\r\nX-Sum: 1\r\nY: 2\r\n\r\n";
        assert_eq!(chunked(body), (Step::Done(body.len()), 3));
        assert_eq!(chunked(b"0\r\nbad trailer\r\n\r\n").0, Step::Bad(400));
        let mut long = b"0\r\nX: ".to_vec();
        long.resize(3 + CHUNK_LINE_MAX + 1, b'v');
        assert_eq!(chunked(&long).0, Step::Bad(431));
    }

    #[test]
    fn data_longer_than_its_size_or_a_bare_lf_is_400() {
        assert_eq!(chunked(b"3\r\nabcd\r\n").0, Step::Bad(400));
        assert_eq!(chunked(b"3\nabc\r\n").0, Step::Bad(400));
        assert_eq!(chunked(b"3\r\nabc\n").0, Step::Bad(400));
    }

    #[test]
    fn more_than_the_limit_is_413() {
        let mut b = Body::new(Framing::Chunked);
        assert_eq!(b.feed(b"100000\r\n"), Step::More, "exactly 1 MiB announced");
        assert_eq!(Body::new(Framing::Chunked).feed(b"100001\r\n"), Step::Bad(413));
        let mut b = Body::new(Framing::Chunked);
        let first = [b"80000\r\n".as_slice(), &[b'x'; 0x80000], b"\r\n"].concat();
        assert_eq!(b.feed(&first), Step::More);
        assert_eq!(b.feed(b"80001\r\n"), Step::Bad(413), "in all, not per chunk");
    }
}
