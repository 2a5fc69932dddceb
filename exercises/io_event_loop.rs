//! Exercise io-event-loop (chapter 15, book/src/15-io-models.md): serve every client at
//! once from one thread, with epoll.
//!
//! A server on 127.0.0.1 (a port the kernel picks) answers each client's line `NAME\n`
//! with `hello NAME\n`, then closes the connection. It is one thread with an epoll loop:
//! the listening socket is non-blocking and in the epoll set, and `serve_ready` reads
//! what a client has sent and answers once the line is whole. But, as given, each
//! connection is read right where it is accepted, blocking: one client that connects and
//! says nothing holds up everyone behind it. Make the loop serve all connections at once,
//! still in one thread: wait for a client's bytes in `epoll_wait`, not in its `read`.
//!
//! Check: `cargo run --bin lab -- check io-event-loop`. The checker connects a client
//! that sends half a line and stalls, then 20 clients at once, each sending a whole line:
//! all 20 must be answered within 2 s, and the stalled client too when it sends the rest;
//! /proc must show one thread in your server the whole time, and no child.

use proclab::say_as;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};

const LISTENER: u64 = u64::MAX;

/// Add `fd` to the epoll set `ep`, reported while readable, with `data` in its events.
fn watch(ep: RawFd, fd: RawFd, data: u64) {
    let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: data };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call.
    let r = unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) };
    assert!(r == 0, "epoll_ctl: {}", std::io::Error::last_os_error());
}

/// A client: its connection and what it has sent so far.
struct Client {
    conn: TcpStream,
    line: Vec<u8>,
}

/// Read what `c` has sent; answer once its line is whole. True when it is done with (its
/// line answered, or it closed): drop it then. On a non-blocking socket, false when
/// there is nothing more to read for now; a blocking one waits here for the line.
fn serve_ready(c: &mut Client) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match c.conn.read(&mut buf) {
            Ok(0) => return true, // the client closed
            Ok(n) => c.line.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false, // more later
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
        if let Some(end) = c.line.iter().position(|&b| b == b'\n') {
            let name = String::from_utf8_lossy(&c.line[..end]).trim().to_string();
            let _ = c.conn.write_all(format!("hello {name}\n").as_bytes());
            return true;
        }
    }
}

fn main() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("O_NONBLOCK"); // accept never waits
    say_as!("server", "listening on {}", listener.local_addr().expect("address"));
    // SAFETY: epoll_create1 has no preconditions.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    watch(ep, listener.as_raw_fd(), LISTENER);
    let mut clients: HashMap<u64, Client> = HashMap::new();
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
    loop {
        // SAFETY: the kernel writes at most 64 events into the array.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), 64, -1) };
        for ev in &events[..n.max(0) as usize] {
            let data = ev.u64; // (copied out of a packed struct)
            if data == LISTENER {
                while let Ok((conn, _)) = listener.accept() {
                    let mut c = Client { conn, line: Vec::new() };
                    // TODO: do not wait for this client here. Make its socket
                    // non-blocking, add it to the epoll set (watch, with its descriptor
                    // as the data) and keep it in `clients`: the loop below serves it
                    // when epoll says it is readable.
                    serve_ready(&mut c); // a blocking socket: waits for the whole line
                }
            } else if let Some(c) = clients.get_mut(&data) {
                if serve_ready(c) {
                    clients.remove(&data); // closes it, which takes it out of the set
                }
            }
        }
    }
}
