//! The app every model serves: one endpoint whose request costs C ms of CPU, then W ms of
//! waiting (a stand-in for a database or another service): `GET /?cpu_ms=C&wait_ms=W`,
//! or the server's `--cpu-ms` and `--wait-ms` without a query. The same bytes come back
//! from every model; the request is parsed by the prefork lab's http.rs.

use crate::http::{param, Conn, Req};
use crate::wire::SliceWriter;
use std::fmt::Write as _;

/// What one request costs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    pub cpu_ms: u64,
    pub wait_ms: u64,
}

/// The endpoint: the cost the request asks for, or the status that refuses it.
pub fn route(req: &Req, default: Cost) -> Result<Cost, u16> {
    if req.path != b"/" {
        return Err(404);
    }
    let cpu_ms = param(req.query, b"cpu_ms").unwrap_or(default.cpu_ms);
    let wait_ms = param(req.query, b"wait_ms").unwrap_or(default.wait_ms);
    if cpu_ms > 1000 || wait_ms > 10_000 {
        return Err(400);
    }
    Ok(Cost { cpu_ms, wait_ms })
}

/// The calling thread's CPU time in ns (or, tests only, the wall clock).
fn clock_ns(wall: bool) -> u64 {
    let id =
        if wall { libc::CLOCK_MONOTONIC } else { libc::CLOCK_THREAD_CPUTIME_ID };
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the local timespec.
    unsafe { libc::clock_gettime(id, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

// ANCHOR: spend_cpu
/// Burn `ms` of this thread's CPU time. That clock runs only while the thread
/// runs: a request costs C ms of CPU however often it loses the core.
pub fn spend_cpu(ms: u64, wall_clock: bool) {
    let end = clock_ns(wall_clock) + ms * 1_000_000;
    let mut x = ms;
    while clock_ns(wall_clock) < end {
        for i in 0..1000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005) ^ i);
        }
    }
}
// ANCHOR_END: spend_cpu

/// The answer, head and body, into `out`; returns its length. HEAD gets the head only.
pub fn render(
    out: &mut [u8],
    answer: Result<Cost, u16>,
    conn: Conn,
    head_only: bool,
) -> usize {
    let mut body = [0u8; 96];
    let mut b = SliceWriter::new(&mut body);
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let status = match answer {
        Ok(c) => {
            let (cpu, wait) = (c.cpu_ms, c.wait_ms);
            let _ = writeln!(b, "pid {pid}: cpu {cpu} ms, wait {wait} ms");
            200
        }
        Err(status) => {
            let _ =
                writeln!(b, "want GET /?cpu_ms=C&wait_ms=W, C <= 1000, W <= 10000");
            status
        }
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    };
    let connection = match conn {
        Conn::Close => "Connection: close\r\n",
        Conn::KeepSay => "Connection: keep-alive\r\n",
        Conn::Keep => "",
    };
    let n = b.len;
    let mut w = SliceWriter::new(out);
    let _ = write!(w, "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n");
    let _ = write!(w, "Content-Length: {n}\r\n{connection}\r\n");
    if !head_only {
        w.put(&body[..n]);
    }
    w.len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse;

    #[test]
    fn the_query_sets_the_cost_and_the_flags_fill_in() {
        let dflt = Cost { cpu_ms: 1, wait_ms: 2 };
        let head = b"GET /?cpu_ms=3&wait_ms=40 HTTP/1.1\r\nHost: a\r\n\r\n";
        let r = parse(head).unwrap();
        assert_eq!(route(&r, dflt), Ok(Cost { cpu_ms: 3, wait_ms: 40 }));
        let r = parse(b"GET /?wait_ms=5 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(route(&r, dflt), Ok(Cost { cpu_ms: 1, wait_ms: 5 }));
        let r = parse(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(route(&r, dflt), Err(404));
        let r = parse(b"GET /?cpu_ms=1001 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(route(&r, dflt), Err(400));
    }

    #[test]
    fn the_answer_is_whole_http() {
        let mut out = [0u8; 512];
        let ok = Ok(Cost { cpu_ms: 1, wait_ms: 9 });
        let n = render(&mut out, ok, Conn::Close, false);
        let text = std::str::from_utf8(&out[..n]).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Connection: close"), "{head}");
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{text}"
        );
        assert!(body.ends_with("cpu 1 ms, wait 9 ms\n"), "{body}");
        let n = render(&mut out, Err(404), Conn::Keep, true);
        let text = std::str::from_utf8(&out[..n]).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 404 Not Found")
                && text.ends_with("\r\n\r\n")
        );
    }

    #[test]
    fn a_cpu_millisecond_is_cpu_time() {
        let t = std::time::Instant::now();
        let before = clock_ns(false);
        spend_cpu(5, false);
        let spent = clock_ns(false) - before;
        assert!(spent >= 5_000_000, "{spent} ns of CPU");
        assert!(t.elapsed().as_nanos() as u64 >= spent);
    }
}
