//! Solution of deadlock-pipes: the child reads the whole request before it writes the reply
//! (a strict request, then reply order).

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
            // The whole request first (the parent is writing it), then the reply.
            let got = receive(&req_r, &mut request);
            send(&rep_w, &reply);
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
