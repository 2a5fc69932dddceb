//! HTTP/1.1 as RFC 9112 and RFC 9110 say, fed to a running server with one worker: every
//! malformed request gets its status and the worker survives it (the same pid answers the
//! next request); the unusual but well-formed ones are served.

use super::*;

fn fnv1a(data: &[u8]) -> String {
    let h = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("{h:016x}")
}

/// The status of a raw answer.
fn status(answer: &str) -> u16 {
    answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// What each rule refuses: (the rule, the request, the status it must get).
fn malformed() -> Vec<(&'static str, Vec<u8>, u16)> {
    let host = |rest: &str| {
        format!("GET / HTTP/1.1\r\nHost: a\r\n{rest}\r\n").into_bytes()
    };
    let post = |fields: &str, body: &str| {
        format!("POST /upload HTTP/1.1\r\nHost: a\r\n{fields}\r\n\r\n{body}")
            .into_bytes()
    };
    let mut long_line = b"GET /".to_vec();
    long_line.extend(std::iter::repeat_n(b'a', 4100));
    long_line.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    let long_field = host(&format!("X: {}\r\n", "v".repeat(4100)));
    let many = host(&"X: y\r\n".repeat(101));
    vec![
        ("two Host lines", host("Host: b\r\n"), 400),
        ("an empty Host", b"GET / HTTP/1.1\r\nHost:\r\n\r\n".to_vec(), 400),
        ("an invalid Host", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n".to_vec(), 400),
        ("no Host in HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400),
        (
            "two empty lines first",
            [b"\r\n\r\n".as_slice(), &host("")].concat(),
            400,
        ),
        ("a NUL in a value", host("X: a\0b\r\n"), 400),
        ("a BEL in a value", host("X: a\x07b\r\n"), 400),
        ("a DEL in a value", host("X: a\x7fb\r\n"), 400),
        (
            "a space before the colon",
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n".to_vec(),
            400,
        ),
        ("an obs-fold", host("X: a\r\n b\r\n"), 400),
        ("not HTTP at all", b"GARBAGE\r\n\r\n".to_vec(), 400),
        ("a request line over 4094 bytes", long_line, 414),
        ("a field line over 4094 bytes", long_field, 431),
        ("101 field lines", many, 431),
        ("an unknown method", b"BREW / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), 501),
        (
            "a method in lower case",
            b"get / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            501,
        ),
        (
            "an unsupported coding",
            post("Transfer-Encoding: gzip, chunked", ""),
            501,
        ),
        ("chunked not last", post("Transfer-Encoding: chunked, gzip", ""), 400),
        (
            "Content-Length and chunked",
            post("Content-Length: 3\r\nTransfer-Encoding: chunked", "abc"),
            400,
        ),
        (
            "two Content-Lengths",
            post("Content-Length: 3\r\nContent-Length: 3", "abc"),
            400,
        ),
        ("a body over 1 MiB", post("Content-Length: 1048577", ""), 413),
        (
            "a chunk over 1 MiB",
            post("Transfer-Encoding: chunked", "100001\r\n"),
            413,
        ),
        (
            "17 hex digits",
            post(
                "Transfer-Encoding: chunked",
                "00000000000000003\r\nabc\r\n0\r\n\r\n",
            ),
            400,
        ),
        (
            "a chunk extension without a name",
            post("Transfer-Encoding: chunked", "3;\r\nabc\r\n0\r\n\r\n"),
            400,
        ),
        (
            "chunk data longer than its size",
            post("Transfer-Encoding: chunked", "3\r\nabcd\r\n0\r\n\r\n"),
            400,
        ),
        ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n".to_vec(), 505),
        (
            "chunked in HTTP/1.0",
            b"POST /upload HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
            400,
        ),
        ("an Expect we do not know", host("Expect: teapot\r\n"), 417),
    ]
}

#[test]
fn each_malformed_request_gets_its_status_and_the_worker_survives() {
    let mut srv = Server::start(&["--workers", "1"]);
    let worker = srv.workers_started(1)[0];
    let port = srv.port;
    for (rule, req, want) in malformed() {
        let answer = raw(port, &req).unwrap_or_else(|e| panic!("{rule}: {e}"));
        assert_eq!(status(&answer), want, "{rule}: {answer:?}");
        assert!(
            answer.contains("Connection: close\r\n"),
            "{rule}: closes: {answer:?}"
        );
        let (code, body) = get(port, "/").expect("served after it");
        assert_eq!(
            (code, worker_of(&body)),
            (200, worker),
            "{rule}: the same worker serves on"
        );
    }
    assert!(alive(worker));
    assert_eq!(srv.stop(libc::SIGINT), Some(0));
}

#[test]
fn a_bare_lf_is_answered_at_once() {
    let srv = Server::start(&["--workers", "1", "--head-ms", "5000"]);
    let t = Instant::now();
    let answer = raw(srv.port, b"GET / HTTP/1.1\nHost: a\n\n").expect("an answer");
    assert_eq!(status(&answer), 400, "{answer:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "not left to the 5 s deadline");
    assert_eq!(srv.stop(libc::SIGINT), Some(0));
}

#[test]
fn unusual_but_well_formed_requests_are_served() {
    let mut srv = Server::start(&["--workers", "1"]);
    srv.workers_started(1);
    let port = srv.port;
    let ok = |req: &[u8]| raw(port, req).expect("an answer");
    let close = "Connection: close\r\n";
    // Absolute-form: the host comes from the target (Host is still required).
    let a =
        ok(format!("GET http://example.com/ HTTP/1.1\r\nHost: x\r\n{close}\r\n")
            .as_bytes());
    assert_eq!(status(&a), 200, "{a}");
    // One empty line before the request line is ignored; HTTP/1.2 is served as 1.1.
    let a = ok(format!("\r\nGET / HTTP/1.2\r\nHost: a\r\n{close}\r\n").as_bytes());
    assert!(a.starts_with("HTTP/1.1 200 "), "{a}");
    // A Content-Length body, then a pipelined request on the same connection.
    let two = format!(
        "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
         GET / HTTP/1.1\r\nHost: a\r\n{close}\r\n"
    );
    let a = ok(two.as_bytes());
    assert!(
        a.contains(&format!("received 5 bytes, fnv1a {}", fnv1a(b"hello"))),
        "{a}"
    );
    assert_eq!(a.matches("HTTP/1.1 200 OK").count(), 2, "{a}");
    // Chunked: extensions, uppercase hex, leading zeros, a trailer.
    let chunked = format!(
        "PUT /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n{close}\r\n\
         0005;a=b ; c=\"d e\"\r\nhello\r\n00A\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\n"
    );
    let a = ok(chunked.as_bytes());
    let want = format!("received 15 bytes, fnv1a {}", fnv1a(b"hello0123456789"));
    assert!(a.contains(&want), "{a}");
    // 405 names what is allowed; OPTIONS says it too.
    let a = ok(format!("DELETE / HTTP/1.1\r\nHost: a\r\n{close}\r\n").as_bytes());
    assert!(
        a.starts_with("HTTP/1.1 405 ")
            && a.contains("\r\nAllow: GET, HEAD, OPTIONS\r\n"),
        "{a}"
    );
    let a = ok(format!("OPTIONS * HTTP/1.1\r\nHost: a\r\n{close}\r\n").as_bytes());
    assert!(a.starts_with("HTTP/1.1 200 ") && a.contains("\r\nAllow: "), "{a}");
    let a =
        ok(format!("GET /nowhere HTTP/1.1\r\nHost: a\r\n{close}\r\n").as_bytes());
    assert_eq!(status(&a), 404);
    assert_eq!(get(port, "/work?ms=99999").unwrap().0, 400, "bounded");
    assert_eq!(get(port, "/cpu?n=0").unwrap().0, 400, "bounded");
    assert_eq!(get(port, "/cpu?n=1000").unwrap().0, 200);
    assert_eq!(srv.stop(libc::SIGINT), Some(0));
}

#[test]
fn keep_alive_in_1_1_and_1_0_and_expect_100_continue() {
    let srv = Server::start(&["--workers", "1"]);
    let addr = SocketAddr::from(([127, 0, 0, 1], srv.port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let read_until = |s: &mut TcpStream, done: &dyn Fn(&str) -> bool| {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !done(&String::from_utf8_lossy(&got)) {
            let n = s.read(&mut buf).expect("an answer");
            assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    };
    // HTTP/1.0 with keep-alive: kept, and said so.
    s.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
    let a = read_until(&mut s, &|t| t.contains("worker") && t.ends_with('\n'));
    assert!(a.contains("Connection: keep-alive\r\n"), "{a}");
    // Expect: 100-continue, on the same connection: 100 first, then the body, then 200.
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n").unwrap();
    let a = read_until(&mut s, &|t| t.contains("\r\n\r\n"));
    assert!(a.starts_with("HTTP/1.1 100 Continue\r\n\r\n"), "{a}");
    s.write_all(b"abc").unwrap();
    let a = read_until(&mut s, &|t| t.contains("bytes") && t.ends_with('\n'));
    assert!(a.contains("200 OK") && a.contains("received 3 bytes"), "{a}");
    assert_eq!(srv.stop(libc::SIGINT), Some(0));
}
