//! Byte plumbing of the pipe lab: read/write loops, the checksum and the test pattern, the
//! count of torn records, and the memcpy baseline. `write_all`, `read_full` and `fnv1a` are
//! async-signal-safe and allocation-free: children use them after fork.

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::unistd::read;
use proclab::{OrDie, Stopwatch};
use std::os::fd::OwnedFd;
use std::time::Duration;

pub use proclab::fdio::{read_full, write_all};

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

pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, continued from `h` over `bytes` (no allocation: fine in a child).
pub fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `len` pseudo-random bytes (xorshift), different for each `seed`.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
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
