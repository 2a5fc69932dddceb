//! Plumbing: the records on the pipes between the lab and the processes of a
//! namespace, four numbers each. Async-signal-safe on the children's side.

use proclab::{fdio, Deadline};
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};

/// A record on a pipe: a kind and three numbers. 32 bytes, less than PIPE_BUF, so
/// each is one write(2) and never interleaved with another writer's.
pub type Record = [i64; 4];

/// Write `rec` to `fd` (a raw descriptor: the child's end). Async-signal-safe.
pub fn send(fd: RawFd, rec: Record) {
    let mut bytes = [0u8; 32];
    for (chunk, v) in bytes.chunks_exact_mut(8).zip(rec) {
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    // SAFETY: fd is open for as long as this call (the caller's end of a pipe).
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let _ = fdio::write_all(fd, &bytes); // EPIPE: the reader is gone, nobody to tell
}

fn decode(bytes: &[u8; 32]) -> Record {
    let mut rec = [0i64; 4];
    for (v, chunk) in rec.iter_mut().zip(bytes.chunks_exact(8)) {
        *v = i64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]));
    }
    rec
}

/// In a child: the next command from the lab (blocking), or None at end of file (the
/// lab is gone). Async-signal-safe.
pub fn command(fd: RawFd) -> Option<Record> {
    let mut bytes = [0u8; 32];
    // SAFETY: as in send.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let n = fdio::read_full(fd, &mut bytes).unwrap_or(0);
    (n == 32).then(|| decode(&bytes))
}

/// In the lab: the next record, or None at end of file or at the deadline.
pub fn recv(fd: &OwnedFd, by: Deadline) -> Option<Record> {
    let mut bytes = [0u8; 32];
    let n = fdio::read_full_by(fd, &mut bytes, by).unwrap_or(0);
    (n == 32).then(|| decode(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    #[test]
    fn a_record_survives_the_pipe() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        send(w.as_raw_fd(), [7, -1, i64::MAX, 0]);
        let by = Deadline::after(Duration::from_secs(1));
        assert_eq!(recv(&r, by), Some([7, -1, i64::MAX, 0]));
        drop(w);
        assert_eq!(recv(&r, by), None, "end of file");
    }
}
