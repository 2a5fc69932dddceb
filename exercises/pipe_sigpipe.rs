//! Exercise pipe-sigpipe (chapter 5, book/src/05-pipe.md): stop when the reader leaves.
//!
//! A producer writes numbered lines to its standard output, a pipe, for as long as
//! someone reads (20 s at most). When the reader closes its end, the next write raises
//! SIGPIPE, whose default action kills the writer (C programs start with that default;
//! this one restores it). Make the producer notice that the reader is gone and exit with
//! status 0 instead.
//!
//! Check: `cargo run --bin lab -- check pipe-sigpipe`. The checker is the reader: it reads
//! a few lines, lets the pipe fill up, then closes it. The producer must still be writing
//! then, and must end within 2 s with status 0 (not killed by SIGPIPE, no panic).

use nix::unistd::write;
use std::time::{Duration, Instant};

fn main() {
    // Rust programs start with SIGPIPE ignored; restore the default that C programs have.
    // SAFETY: signal() with SIG_DFL, before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let out = std::io::stdout();
    let end = Instant::now() + Duration::from_secs(20);
    let mut n = 0u64;
    while Instant::now() < end {
        let line = format!("line {n}\n");
        if let Err(e) = write(&out, line.as_bytes()) {
            // TODO: when the reader has gone, leave with status 0 (instead of dying of
            // SIGPIPE before this line is ever reached).
            panic!("write: {e}");
        }
        n += 1;
    }
    eprintln!("[producer] wrote {n} lines in 20 s");
}
