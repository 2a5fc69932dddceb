//! Whole reads and writes on a descriptor, retried on EINTR and short transfers.
//! Async-signal-safe and allocation-free: a forked child may use them.

use nix::errno::Errno;
use nix::unistd::{read, write};
use std::os::fd::AsFd;

/// write(2) until all of `buf` is written.
pub fn write_all(fd: impl AsFd, mut buf: &[u8]) -> nix::Result<()> {
    let fd = fd.as_fd();
    while !buf.is_empty() {
        match write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// read(2) until `buf` is full or end of file; returns the bytes read.
pub fn read_full(fd: impl AsFd, buf: &mut [u8]) -> nix::Result<usize> {
    let fd = fd.as_fd();
    let mut n = 0;
    while n < buf.len() {
        match read(fd, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_message_crosses_a_pipe() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        write_all(&w, b"hello, pipe").expect("write_all");
        drop(w);
        let mut buf = [0u8; 64];
        let n = read_full(&r, &mut buf).expect("read_full");
        assert_eq!(&buf[..n], b"hello, pipe");
    }
}
