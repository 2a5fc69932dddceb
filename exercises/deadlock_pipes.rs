//! Exercise deadlock-pipes (chapter 7, book/src/07-deadlock.md): a deadlock with no lock.
//!
//! The parent sends its child a 1 MiB request over one pipe and reads a 1 MiB reply from
//! another. As given, the child writes its reply while the parent is still writing the
//! request: both pipes fill up, and each process sleeps in write waiting for the other to
//! read. Make the exchange finish without changing the sizes.
//!
//! Check: `cargo run --bin lab -- check deadlock-pipes`. The program must end by itself
//! (when it does not, the checker shows where each process waits: /proc/PID/wchan), and
//! the kernel's byte counts (rchar, wchar) must show both megabytes moved.

use nix::errno::Errno;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, pipe, read, write, ForkResult};
use proclab::_exit;
use proclab::say_as;
use std::os::fd::AsFd;

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

fn main() {
    let (req_r, req_w) = pipe().expect("pipe");
    let (rep_r, rep_w) = pipe().expect("pipe");
    let (mut request, mut reply) = (vec![b'q'; SIZE], vec![b'r'; SIZE]);
    // SAFETY: the child only reads and writes pipes (its buffers exist already) and calls
    // _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            drop((req_w, rep_r));
            // TODO: this reply is written while the parent is still writing its request.
            send(&rep_w, &reply);
            let got = receive(&req_r, &mut request);
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
