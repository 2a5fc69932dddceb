//! A wrong solution of pipe-sigpipe: SIGPIPE is ignored, and so is the write's error:
//! the producer goes on writing into a pipe nobody reads, getting EPIPE each time, until its
//! 20 s are up. The check `stopped` fails.

use nix::unistd::write;
use std::time::{Duration, Instant};

pub fn main() {
    // Rust programs start with SIGPIPE ignored; restore the default that C programs have.
    // SAFETY: signal() with SIG_DFL, before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // SAFETY: as above.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let out = std::io::stdout();
    let end = Instant::now() + Duration::from_secs(20);
    let mut n = 0u64;
    while Instant::now() < end {
        let line = format!("line {n}\n");
        if let Err(e) = write(&out, line.as_bytes()) {
            let _ = e; // a failed line is only a lost line
        }
        n += 1;
    }
    eprintln!("[producer] wrote {n} lines in 20 s");
}
