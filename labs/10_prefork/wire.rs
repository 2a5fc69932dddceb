//! Bytes on a connection, for a forked worker (raw system calls, no heap): send a whole
//! response with a bound on a slow reader, drain before closing on an error, write text into
//! a fixed buffer.

use nix::errno::Errno;
use std::fmt;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// Where `needle` starts in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Before closing on an error: stop sending, then read and drop what the client still
/// sends (for `wait_ms` at most, and what is there already), because closing with unread
/// bytes makes the kernel send a reset, which can destroy our response before the client
/// reads it.
pub fn linger(fd: RawFd, scratch: &mut [u8], wait_ms: u64) {
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    let mut drained = 0;
    // SAFETY: shutdown, poll and recv on our connection, into a live buffer.
    unsafe {
        libc::shutdown(fd, libc::SHUT_WR); // our FIN goes after the response
        loop {
            let n = libc::recv(
                fd,
                scratch.as_mut_ptr().cast(),
                scratch.len(),
                libc::MSG_DONTWAIT,
            ); // discard
            if n == 0 || (n < 0 && Errno::last() != Errno::EAGAIN) {
                return; // EOF: the client closed its side (or it is gone)
            }
            drained += n.max(0) as usize;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || drained >= 1 << 20 {
                return;
            }
            let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            libc::poll(&mut p, 1, left.as_millis().min(100) as i32 + 1);
        }
    }
}

/// Send all of `bytes` (bounded: 5 s); false if the client went away or stalled.
pub fn send_all(fd: RawFd, mut bytes: &[u8]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe a live slice.
        let n = unsafe {
            libc::send(
                fd,
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        }; // no SIGPIPE if the client is gone
        if n >= 0 {
            bytes = &bytes[n as usize..];
            continue;
        }
        match Errno::last() {
            Errno::EINTR => {}
            Errno::EAGAIN if Instant::now() < deadline => {
                let mut p = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut p, 1, 500) }; // a slow reader: wait, bounded
            }
            _ => return false,
        }
    }
    true
}

/// A `fmt::Write` into a fixed slice (no heap); longer text is cut.
pub struct SliceWriter<'a> {
    buf: &'a mut [u8],
    /// Bytes written so far.
    pub len: usize,
}

impl<'a> SliceWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        SliceWriter { buf, len: 0 }
    }
    pub fn put(&mut self, b: &[u8]) {
        let n = b.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
    }
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.put(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    #[test]
    fn writes_into_a_fixed_buffer() {
        let mut buf = [0u8; 8];
        let mut w = SliceWriter::new(&mut buf);
        let _ = write!(w, "worker {}", 123456);
        assert_eq!(w.len, 8, "cut at the end of the buffer");
        assert_eq!(&buf, b"worker 1");
    }
}
