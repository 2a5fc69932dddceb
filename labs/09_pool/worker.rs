//! A worker's life after fork: read tasks, compute, write results, until STOP. Only
//! async-signal-safe calls, on its own descriptors and stack buffers: nothing is
//! allocated after fork (another thread of the master may have held the allocator's lock).

use super::pool::pack;
use super::task::{hangs, work, Mode, HANG, SLOW};
use super::wire::{Frame, Frames, FRAME, STOP, TASK};
use proclab::_exit;
use proclab::fdio::write_all;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

// ANCHOR: worker
pub fn worker_loop(tasks: BorrowedFd, out: BorrowedFd, board: &AtomicU64) -> ! {
    let me = std::process::id(); // getpid(2)
    let mut inbox = Frames::new(); // on the stack: no allocation after fork
    let (mut outbox, mut ready) = ([0u8; FRAME * 64], 0);
    loop {
        let Some(f) = inbox.pop() else {
            // Nothing on hand: send the results (one write), then wait.
            let results = &outbox[..std::mem::take(&mut ready)];
            if write_all(out, results).is_err() || inbox.fill(tasks) <= 0 {
                leave(1); // EPIPE or EOF: the master is gone, so are we
            }
            continue;
        };
        if f.kind != TASK {
            leave(if f.kind == STOP { 0 } else { 2 }); // STOP: the poison pill
        }
        // ANCHOR_END: worker
        // ANCHOR: worker_run
        if !inbox.has_frame() {
            // The last task on hand: results first, so more tasks can come.
            let results = &outbox[..std::mem::take(&mut ready)];
            write_all(out, results).unwrap_or_else(|_| leave(1));
        }
        board.store(pack(me, Some(f.id), f.attempt), Ordering::Release);
        let value = run_task(&f);
        board.store(pack(me, None, 0), Ordering::Release);
        let slot = &mut outbox[ready..ready + FRAME];
        Frame::result(f.id, f.attempt, value).encode(slot);
        ready += FRAME;
    }
    // ANCHOR_END: worker_run
}

/// The task itself: a slow one sleeps first; a marked one sleeps (state S) until the
/// lab's killer sends SIGKILL. `sleep` is nanosleep(2), async-signal-safe.
fn run_task(f: &Frame) -> u64 {
    let mode = Mode::from_u32(f.mode);
    if mode == Mode::Slow {
        std::thread::sleep(SLOW);
    }
    if hangs(mode, f.attempt) {
        std::thread::sleep(HANG);
    }
    work(f.value, f.rounds)
}

/// close(2) each of `fds`, the ends a child must not hold: EOF and EPIPE must mean
/// that the peer is gone. Async-signal-safe.
pub fn close_all(fds: &[RawFd]) {
    for &fd in fds {
        // SAFETY: close is async-signal-safe; these descriptors are not used again.
        unsafe { libc::close(fd) };
    }
}

/// `_exit(2)`: a forked child never returns into the master's code.
pub fn leave(code: i32) -> ! {
    // _exit is async-signal-safe; it ends this process at once.
    _exit(code)
}
