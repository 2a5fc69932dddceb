//! Whole reads and writes on a descriptor, retried on EINTR and short transfers, and
//! reads with a deadline (every blocking wait in a lab has one). Async-signal-safe and
//! allocation-free: a forked child may use them.

use crate::clock::Deadline;
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
    read_until(fd.as_fd(), buf, None)
}

/// The loop of [`read_full`] and [`read_full_by`]: with a deadline, poll before each read.
fn read_until(
    fd: std::os::fd::BorrowedFd,
    buf: &mut [u8],
    deadline: Option<Deadline>,
) -> nix::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        if let Some(d) = deadline {
            if !readable_by(fd, d)? {
                return Err(Errno::ETIMEDOUT);
            }
        }
        match read(fd, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// poll(2) until `fd` is readable (data, end of file or a hang-up) or `deadline` passes
/// (`--step` pauses do not count). Returns false on timeout.
pub fn readable_by(fd: impl AsFd, deadline: Deadline) -> nix::Result<bool> {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: fd.as_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // Wake at least every 100 ms: a pause may have moved the deadline.
        let ms = deadline.poll_ms(100);
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        match Errno::result(n) {
            Ok(0) if deadline.expired() => return Ok(false),
            Ok(0) | Err(Errno::EINTR) => {}
            Ok(_) => return Ok(true),
            Err(e) => return Err(e),
        }
    }
}

/// read(2) until `buf` is full or end of file, within `deadline`; returns the bytes read,
/// or `ETIMEDOUT` if the deadline passed first.
pub fn read_full_by(
    fd: impl AsFd,
    buf: &mut [u8],
    deadline: Deadline,
) -> nix::Result<usize> {
    read_until(fd.as_fd(), buf, Some(deadline))
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

    #[test]
    fn a_read_with_a_deadline_times_out_while_a_writer_holds_on() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let d = Deadline::after(std::time::Duration::from_millis(20));
        assert_eq!(read_full_by(&r, &mut [0u8; 4], d), Err(Errno::ETIMEDOUT));
        drop(w);
        let d = Deadline::after(std::time::Duration::from_millis(20));
        assert_eq!(
            read_full_by(&r, &mut [0u8; 4], d),
            Ok(0),
            "end of file is an answer"
        );
    }
}
