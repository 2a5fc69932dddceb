//! The `io_models` group: what one request costs each server of labs/15_io_models/ in
//! its own machinery, with no work in it (cpu_ms=0, wait_ms=0): on a kept-alive
//! connection (a wake-up, a read, a write), and on a new connection each time (accept
//! too, and for the thread-per-connection server a new thread). The servers are the
//! lab's binary run as `io-models --serve MODEL`, started once, outside the timed loop.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const MODELS: [&str; 5] = ["prefork", "threads", "pool", "loop", "loops"];

/// A server of the lab, on a port the kernel picked.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(model: &str) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_io-models"));
        cmd.args(["--serve", model, "--port", "0"]).stdout(Stdio::piped());
        let me = std::process::id() as i32;
        // SAFETY: between fork and exec: prctl and getppid only.
        unsafe {
            cmd.pre_exec(move || {
                proclab::lifeline::die_with_parent(me); // the server dies with the bench
                Ok(())
            })
        };
        let mut child = cmd.spawn().expect("start io-models --serve");
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        out.read_line(&mut line).expect("the server's first line");
        let port = line
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Read one answer (its head says how long the body is); the bytes read.
fn answer(s: &mut TcpStream, buf: &mut [u8]) -> usize {
    let mut n = 0;
    loop {
        n += s.read(&mut buf[n..]).expect("read");
        let text = &buf[..n];
        if let Some(h) = text.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&text[..h]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("Content-Length");
            if n >= h + 4 + len {
                return n;
            }
        }
    }
}

fn io_models(c: &mut Criterion) {
    let mut g = c.benchmark_group("io_models");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(20);
    let mut buf = [0u8; 1024];
    for model in MODELS {
        let server = Server::start(model);
        let addr = ("127.0.0.1", server.port);
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        let keep = b"GET /?cpu_ms=0&wait_ms=0 HTTP/1.1\r\nHost: a\r\n\r\n";
        g.bench_function(BenchmarkId::new("keepalive_request", model), |b| {
            b.iter(|| {
                s.write_all(keep).expect("write");
                answer(&mut s, &mut buf)
            })
        });
        drop(s);
        let close =
            b"GET /?cpu_ms=0&wait_ms=0 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
        g.bench_function(BenchmarkId::new("new_connection", model), |b| {
            b.iter(|| {
                let mut s = TcpStream::connect(addr).expect("connect");
                s.write_all(close).expect("write");
                answer(&mut s, &mut buf)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, io_models);
criterion_main!(benches);
