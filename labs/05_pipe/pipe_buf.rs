//! Section 4: a write of at most PIPE_BUF (4096) bytes is atomic: it is never split nor
//! interleaved with other writers' data. A bigger write can be split, so writers racing
//! on one pipe can tear each other's records.

use crate::args::Args;
use crate::filler::bytes_queued;
use crate::watch::net;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::wait::waitpid;
use nix::unistd::{getpid, pipe, read, write, ForkResult};
use proclab::_exit;
use proclab::bytes::pattern;
use proclab::fdio::{read_full, write_all};
use proclab::measure::fmt_bytes;
use proclab::{
    check, cleanup, flush_stdout, lifeline, observe, Lab, OrDie, Status,
};
use std::os::fd::OwnedFd;

const PIPE_BUF: usize = libc::PIPE_BUF; // 4096 on Linux

pub fn run(lab: &mut Lab, args: &Args, size: usize) {
    // ANCHOR: atomic_rule
    let (rx, tx) = pipe().or_die("pipe");
    fcntl(&tx, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).or_die("fcntl");
    let big = pattern(2 * size, 3);
    let partial = write(&tx, &big).or_die("write"); // too much: it takes what fits
    empty(&rx);
    let room = PIPE_BUF - 1;
    write_all(&tx, &big[..size - room]).or_die("write"); // leave PIPE_BUF - 1 free
    let before = bytes_queued(&rx);
    let small = write(&tx, &big[..PIPE_BUF]); // does not fit: all or nothing
    let after = bytes_queued(&rx);
    // ANCHOR_END: atomic_rule
    drop((rx, tx));
    let (too_much, of) = (fmt_bytes(2 * size as u64), fmt_bytes(size as u64));
    observe!(
        lab,
        "split_write",
        "a non-blocking write of {too_much} into an empty {of} pipe returned \
         {written}: split",
        asked = 2 * size,
        written = partial,
        capacity = size
    );
    let result = match small {
        Ok(n) => format!("{n} bytes written"),
        Err(e) => proclab::wait::errno_text(e), // EAGAIN (Resource temporarily ...)
    };
    observe!(
        lab,
        "atomic_write",
        "with {room} bytes of room, a {asked}-byte write returned {result}; bytes \
         queued {queued_before} -> {queued_after}",
        room,
        asked = PIPE_BUF,
        result,
        queued_before = before,
        queued_after = after
    );
    check!(
        lab,
        "big_write_split",
        partial > 0 && partial < 2 * size,
        "a write bigger than PIPE_BUF may be split: part of it went in"
    );
    check!(
        lab,
        "small_write_all_or_nothing",
        small == Err(Errno::EAGAIN) && before == after,
        "a write of PIPE_BUF ({PIPE_BUF}) bytes that does not fit is refused whole \
         (EAGAIN), nothing written"
    );

    let (writers, records) = (args.writers as usize, args.records as usize);
    let mut rows = Vec::new();
    let mut small_ok = false;
    for record in [PIPE_BUF, args.big as usize] {
        let (got, pids, statuses) = race(writers, records, record);
        let (torn, n, intact) = tally(&got, writers, record);
        let (r, per_writer) = (fmt_bytes(record as u64), records);
        let what = if torn == 0 && record > PIPE_BUF {
            "none tore on this run (above PIPE_BUF the kernel no longer promises \
             atomicity; it does not promise tearing)"
                .to_string()
        } else {
            format!("{torn} of {n} records torn (mixed bytes of several writers)")
        };
        observe!(
            lab,
            "race",
            "{writers} writers x {per_writer} records of {r}: {what}",
            record,
            writers,
            records = n,
            torn,
            intact_per_writer = &intact,
            bytes = got.len(),
            pids,
            forked = true,
            statuses
        );
        if record == PIPE_BUF {
            small_ok = torn == 0
                && intact.iter().all(|&k| k == records)
                && got.len() == writers * records * PIPE_BUF;
        }
        let rule = if record <= PIPE_BUF { "<= PIPE_BUF" } else { "> PIPE_BUF" };
        rows.push(vec![r, rule.to_string(), n.to_string(), torn.to_string()]);
    }
    lab.table("race_table", &["record", "", "records", "torn"], &rows);
    check!(
        lab,
        "pipe_buf_records_intact",
        small_ok,
        "{writers} writers at once, records of {PIPE_BUF} bytes: every record arrived \
         whole"
    );
}

/// `writers` processes each write `records` records of `size` bytes (every byte of a
/// record is its writer's letter) to one pipe, released at once; returns what the
/// parent read, the writers' pids and how they ended.
fn race(
    writers: usize,
    records: usize,
    size: usize,
) -> (Vec<u8>, Vec<i32>, Vec<Status>) {
    let parent = getpid().as_raw();
    let (rx, tx) = pipe().or_die("pipe");
    let (gate_rx, gate_tx) = pipe().or_die("pipe"); // closing gate_tx releases them
    let mut kids = Vec::new();
    for w in 0..writers {
        let record = vec![b'A' + w as u8; size];
        flush_stdout();
        // ANCHOR: race
        // SAFETY: the child only reads, writes (buffers allocated before fork), _exits.
        match unsafe { cleanup::fork_tracked() } {
            ForkResult::Child => {
                lifeline::die_with_parent(parent);
                drop(gate_tx);
                let _ = read(&gate_rx, &mut [0u8; 1]); // EOF when the gate opens
                for _ in 0..records {
                    if write_all(&tx, &record).is_err() {
                        _exit(1)
                    }
                }
                _exit(0)
            }
            ForkResult::Parent { child } => kids.push(child),
        }
        // ANCHOR_END: race
    }
    drop((gate_rx, tx));
    let mut all = vec![0u8; writers * records * size];
    let dog = net(&kids, all.len() >> 20);
    drop(gate_tx); // go
    let got = read_full(&rx, &mut all).unwrap_or(0);
    let statuses = kids.iter().map(|&k| Status(waitpid(k, None))).collect();
    kids.iter().for_each(|&k| cleanup::forget(k));
    dog.disarm();
    all.truncate(got);
    (all, kids.iter().map(|k| k.as_raw()).collect(), statuses)
}

/// Cut what the parent read into records of `size` bytes: (torn, records, intact
/// records per writer). A record is intact when all its bytes are one writer's letter
/// (`'A' + writer`).
fn tally(got: &[u8], writers: usize, size: usize) -> (usize, usize, Vec<usize>) {
    let mut intact = vec![0; writers];
    let mut torn = 0;
    for rec in got.chunks(size) {
        let w = rec[0].wrapping_sub(b'A') as usize;
        if rec.len() == size && w < writers && rec.iter().all(|&b| b == rec[0]) {
            intact[w] += 1;
        } else {
            torn += 1;
        }
    }
    (torn, got.len().div_ceil(size), intact)
}

/// Read what a non-blocking pipe holds now, and throw it away.
fn empty(rx: &OwnedFd) {
    let mut buf = [0u8; 4096];
    fcntl(rx, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).or_die("fcntl");
    while let Ok(k) = read(rx, &mut buf) {
        if k == 0 {
            break;
        }
    }
}
