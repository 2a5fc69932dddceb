//! Solution of pipe-eof: the parent closes its own copy of the write end before reading.

use nix::errno::Errno;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, pipe, read, write, ForkResult};
use proclab::say_as;
use std::time::Duration;
use proclab::_exit;

const SIZE: usize = 1 << 20;

pub fn main() {
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
            drop(w); // the reader's own write end: else it waits for itself
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
