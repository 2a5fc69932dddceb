//! Solution of io-event-loop: each accepted connection is made non-blocking, added to the
//! epoll set and kept in the table; `epoll_wait` is the one place the thread waits.

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

pub fn main() {
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
                    let c = Client { conn, line: Vec::new() };
                    c.conn.set_nonblocking(true).expect("O_NONBLOCK");
                    let fd = c.conn.as_raw_fd();
                    watch(ep, fd, fd as u64); // its bytes wake epoll_wait, not a read
                    clients.insert(fd as u64, c);
                }
            } else if let Some(c) = clients.get_mut(&data) {
                if serve_ready(c) {
                    clients.remove(&data); // closes it, which takes it out of the set
                }
            }
        }
    }
}
