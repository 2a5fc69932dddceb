//! Exercise pipe-eof (chapter 5, book/src/05-pipe.md): close the forgotten write end.
//!
//! A child writes 1 MiB into a pipe (pausing once in the middle, as a real producer may)
//! and exits; the parent reads until end of file, then reaps the child. As given, the
//! parent never sees end of file: its read blocks for ever, because a write end of the
//! pipe is still open. Find it and close it.
//!
//! Check: `cargo run --bin lab -- check pipe-eof`. The checker watches from /proc: the
//! reader must end by itself within 2 s of the writer's exit, having read every byte (the
//! kernel's rchar count), and the writer must be reaped by it.

use nix::errno::Errno;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, pipe, read, write, ForkResult};
use proclab::_exit;
use proclab::say_as;
use std::time::Duration;

const SIZE: usize = 1 << 20;

fn main() {
    let (r, w) = pipe().expect("pipe");
    // SAFETY: the child only writes to the pipe, sleeps and calls _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            drop(r); // the writer does not read
            let chunk = [b'x'; 4096];
            for i in 0..SIZE / chunk.len() {
                if i == SIZE / chunk.len() / 2 {
                    std::thread::sleep(Duration::from_millis(300)); // a pause
                }
                if write(&w, &chunk).is_err() {
                    _exit(1)
                }
            }
            _exit(0) // its write end is closed as it exits
        }
        ForkResult::Parent { child } => {
            // TODO: a reader sees end of file only once every write end is closed.
            let (mut total, mut buf) = (0, vec![0u8; 1 << 16]);
            loop {
                match read(&r, &mut buf) {
                    Ok(0) => break, // end of file
                    Ok(n) => total += n,
                    Err(Errno::EINTR) => {}
                    Err(e) => panic!("read: {e}"),
                }
            }
            say_as!("reader", "read {total} bytes, then end of file");
            let status = waitpid(child, None).expect("waitpid");
            say_as!("reader", "the writer ended: {status:?}");
        }
    }
}
