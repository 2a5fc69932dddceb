//! Solution of pipe-sigpipe: SIGPIPE ignored, so the write fails with EPIPE, and the
//! producer exits 0 when it does. (A SIGPIPE handler that calls _exit(0) works too.)

use nix::errno::Errno;
use nix::unistd::write;
use std::time::{Duration, Instant};

pub fn main() {
    // Rust programs start with SIGPIPE ignored; restore the default that C programs have.
    // SAFETY: signal() with SIG_DFL, before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // Ignored, SIGPIPE no longer kills: the write fails with EPIPE instead.
    // SAFETY: as above.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let out = std::io::stdout();
    let end = Instant::now() + Duration::from_secs(20);
    let mut n = 0u64;
    while Instant::now() < end {
        let line = format!("line {n}\n");
        if let Err(e) = write(&out, line.as_bytes()) {
            if e == Errno::EPIPE {
                eprintln!("[producer] the reader is gone after {n} lines");
                std::process::exit(0)
            }
            panic!("write: {e}");
        }
        n += 1;
    }
    eprintln!("[producer] wrote {n} lines in 20 s");
}
