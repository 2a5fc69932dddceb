//! Section 3: a pipe is a ring of slots of one page each; `F_GETPIPE_SZ` says slots x
//! page size (a new pipe: 16 x 4096 = 65536 bytes). A non-blocking writer gets EAGAIN
//! once no slot is free, so writes that do not fill a page leave room unused; a
//! blocking one sleeps in `pipe_write` until the reader makes room. `F_SETPIPE_SZ`
//! changes the number of slots.

use crate::args::Args;
use crate::filler::{bytes_queued, fill, PIPE_BUF};
use crate::watch::net;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::wait::waitpid;
use nix::unistd::{getpid, pipe, sysconf, ForkResult, SysconfVar};
use proclab::_exit;
use proclab::bytes::pattern;
use proclab::fdio::{read_full, write_all};
use proclab::measure::fmt_bytes;
use proclab::{check, cleanup, flush_stdout, lifeline, observe, procfacts, Lab};
use proclab::{OrDie, State, Status};
use std::time::Duration;

const ODD: usize = 3000; // a write smaller than a page

/// Returns the capacity (`F_GETPIPE_SZ`), which sections 4 and 5 build on.
pub fn run(lab: &mut Lab, args: &Args) -> usize {
    let blocking = proclab::test_removes("blocking_fill"); // tests only: no O_NONBLOCK
    let whole_pages = proclab::test_removes("whole_page_writes"); // tests only
    let page =
        sysconf(SysconfVar::PAGE_SIZE).ok().flatten().unwrap_or(4096) as usize;
    // ANCHOR: capacity
    let (rx, tx) = pipe().or_die("pipe");
    // Non-blocking: a full pipe says EAGAIN instead of putting the writer to sleep.
    if !blocking {
        fcntl(&tx, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).or_die("fcntl");
    }
    let size = fcntl(&tx, FcntlArg::F_GETPIPE_SZ).or_die("fcntl") as usize;
    let slots = size / page; // F_GETPIPE_SZ counts page-sized slots
    let full = fill(&rx, &tx, PIPE_BUF); // a page a write, until EAGAIN
    let (rx, tx) = pipe().or_die("pipe"); // a new, empty pipe
    if !blocking {
        fcntl(&tx, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).or_die("fcntl");
    }
    let piece = if whole_pages { PIPE_BUF } else { ODD };
    // Each write takes a slot of its own.
    let odd = fill(&rx, &tx, piece);
    // ANCHOR_END: capacity
    drop((rx, tx));
    let (f_getpipe_sz, filled) = (size, full.queued);
    observe!(
        lab,
        "capacity",
        "F_GETPIPE_SZ says {f_getpipe_sz} bytes: {slots} slots of a {page}-byte page; \
         filler {pid} wrote {PIPE_BUF}-byte writes until {how}, and the pipe held \
         {filled} bytes (FIONREAD)",
        pid = full.pid,
        forked = true,
        f_getpipe_sz,
        page,
        slots,
        piece = PIPE_BUF,
        filled,
        how = full.how(),
        state = full.state,
        status = full.status
    );
    check!(
        lab,
        "capacity_matches",
        full.eagain() && filled == size && filled > 0,
        "writes of a page fill every slot: the pipe took exactly F_GETPIPE_SZ = \
         {size} bytes, then said EAGAIN"
    );
    let expected = slots * (page / ODD * ODD); // the writes that fit whole in a page
    let filled = odd.queued;
    observe!(
        lab,
        "capacity_odd",
        "filler {pid} wrote {piece}-byte writes until {how}: the pipe held {filled} \
         bytes, {expected} expected for {slots} slots of {ODD}",
        pid = odd.pid,
        forked = true,
        piece,
        filled,
        expected,
        how = odd.how(),
        state = odd.state,
        status = odd.status
    );
    check!(
        lab,
        "capacity_in_pages",
        odd.eagain() && filled == expected && filled < size,
        "the capacity is counted in pages, not bytes: {ODD}-byte writes, one slot \
         each, filled the pipe at {expected} of its {size} bytes"
    );
    parked(lab, size);
    set_size(lab, args.pipe_size, !blocking);
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
    // FIONREAD: the bytes in the pipe.
    let queued = bytes_queued(&rx);
    // ANCHOR_END: parked
    let (state, wchan) = seen.unwrap_or(('?', String::new()));
    let (state, of) = (State(state), fmt_bytes(total as u64));
    // Observed while it sleeps: a --step prompt here shows it asleep in pipe_write.
    observe!(
        lab,
        "parked",
        "writer {pid} of {of} sleeps in {state} (wchan {wchan}) with {queued} bytes \
         queued",
        pid = w,
        forked = true,
        state,
        wchan,
        queued,
        total
    );
    // ANCHOR: drained
    let drained = read_full(&rx, &mut all).unwrap_or(0); // wakes the writer
    let status = Status(waitpid(writer, None));
    // ANCHOR_END: drained
    dog.disarm();
    cleanup::forget(writer);
    observe!(
        lab,
        "drained",
        "after the parent drained {drained} bytes, writer {pid} {status}",
        pid = w,
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
fn set_size(lab: &mut Lab, asked: u32, non_blocking: bool) {
    // ANCHOR: setsize
    let (rx, tx) = pipe().or_die("pipe");
    if non_blocking {
        fcntl(&tx, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).or_die("fcntl");
    }
    // EPERM above /proc/sys/fs/pipe-max-size (or a user's page quota): 0 granted.
    let granted =
        fcntl(&tx, FcntlArg::F_SETPIPE_SZ(asked as i32)).unwrap_or(0) as usize;
    let now = fcntl(&tx, FcntlArg::F_GETPIPE_SZ).or_die("fcntl") as usize;
    let refilled = fill(&rx, &tx, PIPE_BUF);
    // ANCHOR_END: setsize
    drop((rx, tx));
    let filled = refilled.queued;
    observe!(
        lab,
        "setpipe_sz",
        "F_SETPIPE_SZ({asked}) granted {granted}; F_GETPIPE_SZ now {f_getpipe_sz}; \
         filler {pid} wrote until {how}, at {filled} bytes",
        pid = refilled.pid,
        forked = true,
        asked,
        granted,
        f_getpipe_sz = now,
        filled,
        how = refilled.how(),
        state = refilled.state,
        status = refilled.status
    );
    check!(
        lab,
        "setpipe_sz_changes_capacity",
        granted >= asked as usize
            && now == granted
            && filled == now
            && refilled.eagain(),
        "F_SETPIPE_SZ changes how much a pipe holds (rounded up to a power of two \
         pages)"
    );
}
