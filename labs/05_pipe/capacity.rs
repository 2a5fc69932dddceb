//! Section 3: a pipe holds `F_GETPIPE_SZ` bytes (64 KiB by default). A non-blocking
//! writer gets EAGAIN when it is full; a blocking one sleeps in `pipe_write` until the
//! reader makes room. `F_SETPIPE_SZ` changes the capacity.

use crate::args::Args;
use crate::watch::net;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::wait::waitpid;
use nix::unistd::{getpid, pipe, write, ForkResult};
use proclab::_exit;
use proclab::bytes::pattern;
use proclab::fdio::{read_full, write_all};
use proclab::measure::fmt_bytes;
use proclab::{check, cleanup, flush_stdout, lifeline, observe, procfacts, Lab};
use proclab::{OrDie, State, Status};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// Returns the capacity (`F_GETPIPE_SZ`), which sections 4 and 5 build on.
pub fn run(lab: &mut Lab, args: &Args) -> usize {
    // ANCHOR: capacity
    let (rx, tx) = pipe().or_die("pipe");
    // Non-blocking: a full pipe says EAGAIN instead of putting the writer to sleep.
    fcntl(&tx, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).or_die("fcntl");
    let size = fcntl(&tx, FcntlArg::F_GETPIPE_SZ).or_die("fcntl") as usize;
    let filled = fill(&tx); // write until EAGAIN: nobody reads
    drop((rx, tx));
    // ANCHOR_END: capacity
    observe!(
        lab,
        "capacity",
        "non-blocking writes stopped with EAGAIN after {filled} bytes; \
         F_GETPIPE_SZ says {f_getpipe_sz}",
        filled,
        f_getpipe_sz = size
    );
    check!(
        lab,
        "capacity_matches",
        filled == size && filled > 0,
        "a pipe nobody reads holds exactly F_GETPIPE_SZ = {size} bytes"
    );
    parked(lab, size);
    set_size(lab, args.pipe_size);
    size
}

/// A blocking writer of twice the capacity, seen asleep with the pipe full.
fn parked(lab: &mut Lab, size: usize) {
    let parent = getpid().as_raw();
    let total = 2 * size; // twice the capacity: the writer must wait for the reader
    let data = pattern(total, 2);
    let mut all = vec![0u8; total];
    let (rx, tx) = pipe().or_die("pipe");
    flush_stdout();
    // ANCHOR: parked
    // SAFETY: the child only writes (a buffer allocated before fork) and _exits.
    let writer = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            lifeline::die_with_parent(parent);
            drop(rx);
            let ok = write_all(&tx, &data).is_ok(); // sleeps once the pipe is full
            _exit(if ok { 0 } else { 1 })
        }
        ForkResult::Parent { child } => child,
    };
    drop(tx);
    let dog = net(&[writer], 0);
    let w = writer.as_raw();
    let seen = procfacts::poll_until(Duration::from_secs(10), || {
        let (s, wchan) = (procfacts::state(w)?, procfacts::wchan(w)?);
        (s == 'S' && wchan.contains("pipe_write")).then_some((s, wchan))
    });
    let queued = bytes_queued(&rx); // FIONREAD: bytes in the pipe right now
    let drained = read_full(&rx, &mut all).unwrap_or(0); // wakes the writer
    let status = Status(waitpid(writer, None));
    // ANCHOR_END: parked
    dog.disarm();
    cleanup::forget(writer);
    let (state, wchan) = seen.unwrap_or(('?', String::new()));
    let (state, of) = (State(state), fmt_bytes(total as u64));
    observe!(
        lab,
        "parked",
        "writer {writer} of {of} sat in {state} (wchan {wchan}) with {queued} bytes \
         queued; after draining {drained} bytes it {status}",
        state,
        wchan,
        queued,
        drained,
        total,
        status
    );
    check!(
        lab,
        "writer_parked_until_drained",
        state.0 == 'S' && queued == size && drained == total && status.code() == Some(0),
        "a blocking writer sleeps in pipe_write while the pipe is full, and finishes \
         once the reader drains"
    );
}

/// `F_SETPIPE_SZ(asked)`, then fill the pipe again.
fn set_size(lab: &mut Lab, asked: u32) {
    // ANCHOR: setsize
    let (rx, tx) = pipe().or_die("pipe");
    fcntl(&tx, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).or_die("fcntl");
    // EPERM above /proc/sys/fs/pipe-max-size (or a user's page quota): 0 granted.
    let granted =
        fcntl(&tx, FcntlArg::F_SETPIPE_SZ(asked as i32)).unwrap_or(0) as usize;
    let now = fcntl(&tx, FcntlArg::F_GETPIPE_SZ).or_die("fcntl") as usize;
    let refilled = fill(&tx);
    // ANCHOR_END: setsize
    drop((rx, tx));
    observe!(
        lab,
        "setpipe_sz",
        "F_SETPIPE_SZ({asked}) granted {granted}; F_GETPIPE_SZ now {f_getpipe_sz}; \
         the pipe filled up at {filled} bytes",
        asked,
        granted,
        f_getpipe_sz = now,
        filled = refilled
    );
    check!(
        lab,
        "setpipe_sz_changes_capacity",
        granted >= asked as usize && now == granted && refilled == now,
        "F_SETPIPE_SZ changes how much a pipe holds (rounded up to a power of two \
         pages)"
    );
}

/// Non-blocking writes of PIPE_BUF, then single bytes, until EAGAIN; the bytes written.
fn fill(tx: &OwnedFd) -> usize {
    let page = [7u8; libc::PIPE_BUF];
    let mut n = 0;
    for piece in [&page[..], &page[..1]] {
        loop {
            match write(tx, piece) {
                Ok(k) => n += k,
                Err(Errno::EINTR) => {}
                Err(_) => break, // EAGAIN: full
            }
        }
    }
    n
}

/// Bytes waiting in the pipe (ioctl FIONREAD).
pub fn bytes_queued(rx: &OwnedFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to the pointer we pass.
    unsafe { libc::ioctl(rx.as_raw_fd(), libc::FIONREAD, &mut n) };
    n as usize
}
