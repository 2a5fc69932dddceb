//! A wrong solution of pipe-eof: instead of closing its write end, the reader stops when
//! nothing has arrived for 100 ms. The writer's pause is longer: the reader stops half-way,
//! then waits for a writer that blocks on the full pipe. The check `reader_sees_eof` fails
//! (and `read_all`).

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, pipe, read, write, ForkResult};
use proclab::say_as;
use std::os::fd::{AsFd, OwnedFd};
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
            // Stop when nothing has come for 100 ms: the writer must be done.
            let quiet = |fd: &OwnedFd| {
                let mut p = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
                matches!(poll(&mut p, 100u16), Ok(0))
            };
            let (mut total, mut buf) = (0, vec![0u8; 1 << 16]);
            loop {
                if quiet(&r) {
                    break;
                }
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
