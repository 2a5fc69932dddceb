//! A wrong solution of deadlock-pipes: the child reads the request with one read, which
//! returns at most what the pipe holds (64 KiB), then writes its reply while the parent is
//! still writing the rest of the request: the same deadlock. The check `finished` fails.

use nix::errno::Errno;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, pipe, read, write, ForkResult};
use proclab::say_as;
use std::os::fd::AsFd;
use proclab::_exit;

const SIZE: usize = 1 << 20;

/// Write all of `buf`.
fn send(fd: impl AsFd, mut buf: &[u8]) {
    while !buf.is_empty() {
        match write(&fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}

/// Read until `buf` is full or end of file; the number of bytes read.
fn receive(fd: impl AsFd, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match read(&fd, &mut buf[n..]) {
            Ok(0) | Err(Errno::EBADF) => break,
            Ok(k) => n += k,
            Err(_) => {}
        }
    }
    n
}

pub fn main() {
    let (req_r, req_w) = pipe().expect("pipe");
    let (rep_r, rep_w) = pipe().expect("pipe");
    let (mut request, mut reply) = (vec![b'q'; SIZE], vec![b'r'; SIZE]);
    // SAFETY: the child only reads and writes pipes (its buffers exist already) and calls
    // _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            drop((req_w, rep_r));
            // Read the request first (one read), then reply.
            let got = read(&req_r, &mut request).unwrap_or(0);
            send(&rep_w, &reply);
            let got = got + receive(&req_r, &mut request[got..]);
            _exit(if got == SIZE { 0 } else { 1 })
        }
        ForkResult::Parent { child } => {
            drop((req_r, rep_w));
            send(&req_w, &request);
            drop(req_w); // the whole request is sent
            let got = receive(&rep_r, &mut reply);
            let status = waitpid(child, None).expect("waitpid");
            say_as!("parent", "got a reply of {got} bytes; the child: {status:?}");
        }
    }
}
