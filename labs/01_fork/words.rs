//! Plumbing: fixed-size messages of u64 words through a pipe (async-signal-safe).

use proclab::fdio::{read_full_by, write_all};
use proclab::Deadline;
use std::os::fd::OwnedFd;

/// Write `N` (at most 3) words in one write(2) of at most 24 bytes, under PIPE_BUF:
/// never interleaved with another child's. Async-signal-safe.
pub fn send<const N: usize>(fd: &OwnedFd, words: [u64; N]) {
    let mut buf = [0u8; 24];
    for (i, w) in words.iter().enumerate() {
        buf[i * 8..i * 8 + 8].copy_from_slice(&w.to_ne_bytes());
    }
    let _ = write_all(fd, &buf[..N * 8]);
}

/// Read `N` words written by [`send`]; None at end of file or at the deadline.
pub fn recv<const N: usize>(fd: &OwnedFd, by: Deadline) -> Option<[u64; N]> {
    let mut buf = [0u8; 24];
    let n = read_full_by(fd, &mut buf[..N * 8], by).ok()?;
    (n == N * 8).then(|| {
        std::array::from_fn(|i| {
            u64::from_ne_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap_or_default())
        })
    })
}
