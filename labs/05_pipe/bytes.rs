//! Byte plumbing of the pipe lab: reading until EOF, the count of torn records, and the
//! memcpy baseline. The checksum and the pattern are the harness's (`proclab::bytes`).

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::unistd::read;
use proclab::bytes::pattern;
use proclab::{OrDie, Stopwatch};
use std::os::fd::OwnedFd;
use std::time::Duration;

/// Read until EOF; returns the bytes read.
pub fn drain(rx: &OwnedFd, buf: &mut [u8]) -> usize {
    let mut n = 0;
    loop {
        match read(rx, buf) {
            Ok(0) => return n,
            Ok(k) => n += k,
            Err(Errno::EINTR) => {}
            Err(e) => proclab::die("read", e),
        }
    }
}

/// Read what a non-blocking pipe holds now.
pub fn drain_nonblocking(rx: &OwnedFd, buf: &mut [u8]) {
    fcntl(rx, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).or_die("fcntl");
    while let Ok(k) = read(rx, buf) {
        if k == 0 {
            break;
        }
    }
}

/// What the writers' race left in the pipe.
pub struct Race {
    pub records: usize,
    pub torn: usize,
    pub intact_per_writer: Vec<usize>,
    pub total_bytes: usize,
}

/// Cut what the parent read into records of `size` bytes and count the torn ones: a record is
/// intact when all its bytes are one writer's letter (`'A' + writer`).
pub fn tally(got: &[u8], writers: usize, size: usize) -> Race {
    let mut intact = vec![0; writers];
    let mut torn = 0;
    for rec in got.chunks(size) {
        if rec.len() == size
            && rec.iter().all(|&b| b == rec[0])
            && (rec[0].wrapping_sub(b'A') as usize) < writers
        {
            intact[(rec[0] - b'A') as usize] += 1;
        } else {
            torn += 1;
        }
    }
    Race {
        records: got.len().div_ceil(size),
        torn,
        intact_per_writer: intact,
        total_bytes: got.len(),
    }
}

/// The time memcpy takes to copy `total` bytes in pieces of `chunk` (same buffers sizes as the pipe).
pub fn memcpy_time(chunk: usize, total: usize) -> Duration {
    let src = pattern(chunk, 5);
    let mut dst = vec![0u8; chunk];
    let sw = Stopwatch::start();
    for _ in 0..total / chunk {
        dst.copy_from_slice(std::hint::black_box(&src)); // memcpy
        std::hint::black_box(&mut dst);
    }
    sw.elapsed()
}
