//! # pipe: what a learner gets wrong about pipes, each one observed
//!
//! A pipe is a byte stream in the kernel with a read end and a write end, inherited across
//! `fork`. The lab shows, each from the kernel's own accounting:
//!
//! 1. a one-way message parent -> child arrives intact (length and checksum on both sides);
//! 2. EOF needs *every* write end closed: a reader that forgets its own copy of the write end
//!    sleeps in `pipe_read` forever; a watchdog sees it (state S, wchan) and breaks it; the
//!    fixed reader sees EOF;
//! 3. capacity (64 KiB by default, `F_GETPIPE_SZ`), a blocking writer parked in state S until
//!    the reader drains, and `F_SETPIPE_SZ`;
//! 4. writes of at most PIPE_BUF (4096) bytes are atomic: several writers never interleave
//!    them; bigger writes can be split (and torn by the other writers);
//! 5. two-way request/reply with two pipes, the round-trip cost on the same and on different
//!    CPUs, and the deadlock when both sides write big messages before reading;
//! 6. SIGPIPE kills a writer whose readers are gone, or `write` returns EPIPE when SIGPIPE is
//!    ignored (as Rust programs do by default);
//! 7. throughput for 4 KiB, 64 KiB and 1 MiB writes against a memcpy of the same data.
//!
//! What to look for: `anon_pipe_read` / `anon_pipe_write` (the kernel function a sleeping
//! process waits in, from /proc/PID/wchan; older kernels say `pipe_read`), the wait statuses
//! (`Signaled(.., SIGKILL)`, `Signaled(.., SIGPIPE)`, `Exited(.., 32)`), the torn-record count.
//!
//! Caveats: timings depend on the machine and its load (this lab proves phenomena, the
//! benchmarks measure); whether records above PIPE_BUF actually tear on a run depends on
//! scheduling: the kernel stops promising atomicity, it does not promise tearing.

// The plumbing lives beside this file: the command line, the byte loops (write_all,
// read_full, checksum, torn-record count), and how each observation is printed.
mod args;
mod bytes;
mod report;

use args::Args;
use bytes::{drain, drain_nonblocking, memcpy_time, tally, Race};
use clap::Parser;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{getpid, pipe, read, write, ForkResult, Pid};
use proclab::bytes::{fnv1a, pattern, FNV_OFFSET};
use proclab::fdio::{read_full, write_all};
use proclab::wait::waitpid_by;
use proclab::{
    cleanup, flush_stdout, say, Lab, OrDie, Stopwatch, Summary, Watchdog,
};
use proclab::{cpu, lifeline, procfacts, Deadline, Status};
use report::Stuck;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PIPE_BUF: usize = libc::PIPE_BUF; // 4096 on Linux

/// The net under every scenario whose children should end by themselves: one that hangs
/// is killed at this deadline (lab time), so every read, write and waitpid on it ends.
const NET: Duration = Duration::from_secs(30);

/// Kill `kids` at [`NET`] unless the watchdog is disarmed first.
fn net(kids: &[Pid]) -> Watchdog {
    let kids = kids.to_vec();
    Watchdog::arm(NET, move || {
        kids.iter().for_each(|&k| {
            let _ = kill(k, Signal::SIGKILL);
        })
    })
}

fn main() {
    let args = Args::parse();
    let mut lab = Lab::start(
        "pipe",
        "pipes deliver bytes intact and in order, end at EOF only when every write end is closed, hold F_GETPIPE_SZ bytes and block the writer beyond, keep writes of at most PIPE_BUF whole, and kill (SIGPIPE) or fail (EPIPE) a writer with no reader",
        &args.common,
    );
    let deadline = Duration::from_millis(args.deadline_ms);
    let cpus = cpu::allowed();
    let me = getpid().as_raw();
    // Tests only: each switch removes one phenomenon, and its check must turn.
    let short_write = proclab::test_removes("short_write");
    let no_forgotten_end = proclab::test_removes("no_forgotten_end");
    let parent_keeps_end = proclab::test_removes("parent_keeps_write_end");
    let exchange_fits = proclab::test_removes("exchange_fits");
    let sigpipe_inherited = proclab::test_removes("sigpipe_inherited");

    lab.section("1. One-way: parent to child, unused ends closed");
    let msg = pattern(args.bytes as usize, 1);
    let (sent_len, sent_sum) = (msg.len() as u64, fnv1a(FNV_OFFSET, &msg));
    let mut buf = vec![0u8; 64 << 10]; // the child's read buffer, allocated before fork

    // ANCHOR: oneway
    let (rx, tx) = pipe().or_die("pipe"); // rx = read end, tx = write end; both inherited by fork
    let (back_rx, back_tx) = pipe().or_die("pipe"); // the child reports what it received
    flush_stdout();
    // SAFETY: the child only reads, writes, closes and _exits (async-signal-safe), into a
    // buffer allocated before fork. fork_tracked = fork + cleanup::track, Ctrl-C-proof.
    let child = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            lifeline::die_with_parent(me); // SIGKILL if the lab dies
            drop(tx); // close(2) our copy of the write end, or we never see EOF
            drop(back_rx);
            let (mut len, mut sum) = (0u64, FNV_OFFSET);
            loop {
                match read(&rx, &mut buf) {
                    Ok(0) => break, // EOF: every write end is closed
                    Ok(n) => (len, sum) = (len + n as u64, fnv1a(sum, &buf[..n])),
                    Err(Errno::EINTR) => continue,
                    Err(_) => unsafe { libc::_exit(1) },
                }
            }
            say!("read {len} bytes until EOF, checksum {sum:016x}");
            let mut report = [0u8; 16];
            report[..8].copy_from_slice(&len.to_le_bytes());
            report[8..].copy_from_slice(&sum.to_le_bytes());
            let ok = write_all(&back_tx, &report).is_ok(); // one 16-byte write: atomic
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => child,
    };
    // ANCHOR_END: oneway
    // ANCHOR: oneway_parent
    let dog = net(&[child]);
    drop(rx); // close(2) the parent's read end: only the child reads
    drop(back_tx);
    let sent = if short_write { &msg[..msg.len() / 2] } else { &msg[..] };
    let wrote = write_all(&tx, sent).is_ok(); // blocks whenever the pipe is full, until the child reads
    drop(tx); // close(2) the last write end: the child's next read returns 0 (EOF)
    let mut report = [0u8; 16];
    let got = read_full(&back_rx, &mut report).unwrap_or(0);
    let status = Status(waitpid(child, None));
    dog.disarm();
    cleanup::forget(child);
    // ANCHOR_END: oneway_parent
    let recv_len = u64::from_le_bytes(report[..8].try_into().unwrap_or_default());
    let recv_sum = u64::from_le_bytes(report[8..].try_into().unwrap_or_default());
    report::oneway(
        &mut lab,
        child,
        (sent_len, sent_sum),
        (recv_len, recv_sum),
        got,
        status,
    );
    lab.check(
        "bytes_intact",
        wrote && got == 16 && recv_len == sent_len && recv_sum == sent_sum && status.code() == Some(0),
        format_args!("the {sent_len} bytes arrived intact: same length and checksum on both sides"),
    );

    lab.section("2. EOF needs every write end closed");
    let mut eof_ok = [false; 2];
    for (i, closes_own) in [false, true].into_iter().enumerate() {
        let (rx, tx) = pipe().or_die("pipe");
        flush_stdout();
        // SAFETY: the child only reads, closes, calls say! and _exits.
        let child = match unsafe { cleanup::fork_tracked() } {
            ForkResult::Child => {
                lifeline::die_with_parent(me);
                reader_child(rx, tx, closes_own || no_forgotten_end, &mut buf)
            }
            ForkResult::Parent { child } => child,
        };
        drop(rx);
        write_all(&tx, b"hello, then nothing more").or_die("write");
        // The parent is done writing: it closes its write end (tests only: it forgets).
        let kept = if parent_keeps_end {
            Some(tx)
        } else {
            drop(tx);
            None
        };
        let (statuses, fired, stuck) =
            wait_or_break(&[child], "pipe_read", deadline);
        drop(kept);
        let status = statuses[0];
        report::eof(
            &mut lab,
            child,
            closes_own,
            fired,
            &stuck,
            status,
            args.deadline_ms,
        );
        eof_ok[i] = if closes_own {
            stuck.is_empty() && status.code() == Some(0)
        } else {
            fired && !stuck.is_empty() && status.signal() == Some(Signal::SIGKILL)
        };
    }
    lab.check(
        "forgotten_write_end_hangs",
        eof_ok[0],
        "a reader holding its own copy of the write end never sees EOF: the watchdog found it asleep in pipe_read and killed it",
    );
    lab.check(
        "closed_write_end_sees_eof",
        eof_ok[1],
        "once the reader closes its copy too, read returns 0 (EOF) and it exits by itself",
    );

    lab.section("3. Capacity and back-pressure");
    // ANCHOR: capacity
    let (rx, tx) = pipe().or_die("pipe");
    fcntl(&tx, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).or_die("fcntl"); // a full pipe says EAGAIN instead of blocking
    let size = fcntl(&tx, FcntlArg::F_GETPIPE_SZ).or_die("fcntl") as usize; // the kernel's figure
    let filled = fill(&tx); // write until EAGAIN: nobody reads

    // ANCHOR_END: capacity
    drop((rx, tx));
    report::capacity(&mut lab, filled, size);
    lab.check(
        "capacity_matches",
        filled == size && filled > 0,
        format_args!(
            "a pipe nobody reads holds exactly F_GETPIPE_SZ = {size} bytes"
        ),
    );

    let (rx, tx) = pipe().or_die("pipe");
    let total = 2 * size; // twice the capacity: the writer must wait for the reader
    let data = pattern(total, 2);
    flush_stdout();
    // ANCHOR: parked
    // SAFETY: the child only writes (a buffer allocated before fork), closes and _exits.
    let writer = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            lifeline::die_with_parent(me);
            drop(rx);
            let ok = write_all(&tx, &data).is_ok(); // blocks once the pipe is full
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => child,
    };
    let dog = net(&[writer]);
    drop(tx);
    let parked = procfacts::poll_until(Duration::from_secs(10), || {
        let (s, w) = (
            procfacts::state(writer.as_raw())?,
            procfacts::wchan(writer.as_raw())?,
        );
        (s == 'S' && w.contains("pipe_write")).then_some((s, w))
    });
    let queued = bytes_queued(&rx); // FIONREAD: bytes in the pipe right now
    let drained = drain(&rx, &mut buf); // read until EOF: the writer wakes and finishes
    let status = Status(waitpid(writer, None));
    // ANCHOR_END: parked
    dog.disarm();
    cleanup::forget(writer);
    report::parked(&mut lab, writer, &parked, queued, drained, total, status);
    lab.check(
        "writer_parked_until_drained",
        parked.is_some() && queued == size && drained == total && status.code() == Some(0),
        "a blocking writer sleeps in pipe_write while the pipe is full, and finishes once the reader drains",
    );

    // ANCHOR: setsize
    let (rx, tx) = pipe().or_die("pipe");
    fcntl(&tx, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).or_die("fcntl");
    let granted = fcntl(&tx, FcntlArg::F_SETPIPE_SZ(args.pipe_size as i32))
        .or_die("fcntl F_SETPIPE_SZ") as usize;
    let now = fcntl(&tx, FcntlArg::F_GETPIPE_SZ).or_die("fcntl") as usize;
    let refilled = fill(&tx);
    // ANCHOR_END: setsize
    drop((rx, tx));
    report::setpipe_sz(&mut lab, args.pipe_size, granted, now, refilled);
    lab.check(
        "setpipe_sz_changes_capacity",
        granted >= args.pipe_size as usize && now == granted && refilled == now,
        "F_SETPIPE_SZ changes how much a pipe holds (rounded up to a power of two pages)",
    );

    lab.section("4. Writes up to PIPE_BUF are atomic");
    // ANCHOR: atomic_rule
    let (rx, tx) = pipe().or_die("pipe");
    fcntl(&tx, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).or_die("fcntl");
    let big = pattern(2 * size, 3);
    let partial = write(&tx, &big).or_die("write"); // more than fits: the kernel takes what fits
    drain_nonblocking(&rx, &mut buf);
    let room = PIPE_BUF - 1;
    write_all(&tx, &big[..size - room]).or_die("write"); // leave PIPE_BUF - 1 bytes of room
    let before = bytes_queued(&rx);
    let small = write(&tx, &big[..PIPE_BUF]); // PIPE_BUF bytes do not fit: all or nothing
    let after = bytes_queued(&rx);
    // ANCHOR_END: atomic_rule
    drop((rx, tx));
    report::atomic_rule(&mut lab, size, partial, room, small, before, after);
    lab.check(
        "big_write_split",
        partial > 0 && partial < 2 * size,
        "a write bigger than PIPE_BUF may be split: part of it went in",
    );
    lab.check(
        "small_write_all_or_nothing",
        small == Err(Errno::EAGAIN) && before == after,
        format_args!(
            "a write of PIPE_BUF ({PIPE_BUF}) bytes that does not fit is refused whole (EAGAIN), nothing written"
        ),
    );

    let (writers, records) = (args.writers as usize, args.records as usize);
    let races: Vec<(usize, Race)> = [PIPE_BUF, args.big as usize]
        .into_iter()
        .map(|rec| {
            let r = race(me, writers, records, rec);
            report::race(&mut lab, args.writers, args.records, rec, &r);
            (rec, r)
        })
        .collect();
    report::race_table(&mut lab, &races);
    let small = &races[0].1; // records of PIPE_BUF bytes
    lab.check(
        "pipe_buf_records_intact",
        small.torn == 0
            && small.intact_per_writer.iter().all(|&n| n == records)
            && small.total_bytes == writers * records * PIPE_BUF,
        format_args!(
            "{} writers at once, records of {PIPE_BUF} bytes: every record arrived whole",
            args.writers
        ),
    );

    lab.section("5. Two-way: request and reply, and the deadlock it risks");
    let placements: Vec<(String, Option<(usize, usize)>)> = match cpus[..] {
        [a, b, ..] => vec![
            (format!("same CPU ({a} and {a})"), Some((a, a))),
            (format!("different CPUs ({a} and {b})"), Some((a, b))),
            ("unpinned".to_string(), None),
        ],
        _ => vec![("unpinned (one CPU)".to_string(), None)],
    };
    let rtts: Vec<(String, Summary, usize)> = placements
        .into_iter()
        .map(|(label, cpus_pair)| {
            let (summary, correct) = ping_pong(me, args.rounds as usize, cpus_pair);
            (label, summary, correct)
        })
        .collect();
    report::rtt(&mut lab, &rtts, args.rounds, cpus.len() >= 2);
    lab.check(
        "request_reply",
        rtts.iter().all(|&(_, _, correct)| correct == args.rounds as usize),
        "every request got its own correct reply over the two pipes",
    );

    let mut dl = [false; 2];
    for (i, reader_first) in [false, true].into_iter().enumerate() {
        // Twice what the pipe holds (tests only: half, which fits).
        let message = if exchange_fits { size / 2 } else { 2 * size };
        let (statuses, fired, stuck) =
            exchange(me, message, reader_first, deadline);
        report::exchange(&mut lab, message, reader_first, fired, &stuck, &statuses);
        dl[i] = if reader_first {
            stuck.is_empty() && statuses.iter().all(|s| s.code() == Some(0))
        } else {
            fired
                && stuck.len() == 2
                && stuck
                    .iter()
                    .all(|(_, s, w)| *s == 'S' && w.contains("pipe_write"))
        };
    }
    lab.check(
        "big_exchange_deadlocks",
        dl[0],
        "two processes that each write more than the pipe holds before reading block each other in pipe_write (see the deadlock lab)",
    );
    lab.check(
        "reading_first_completes",
        dl[1],
        "when one side reads before it writes, the same exchange completes",
    );

    lab.section("6. SIGPIPE and EPIPE: writing with no reader left");
    // SAFETY: sigaction is plain data; all zeroes is a valid value to be overwritten.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries the current disposition.
    unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) };
    report::sigpipe_disposition(&mut lab, old.sa_sigaction == libc::SIG_IGN);
    let mut results = Vec::new();
    for default_action in [true, false] {
        // ANCHOR: sigpipe
        let (rx, tx) = pipe().or_die("pipe");
        drop(rx); // the only read end is closed: nobody can ever read
        flush_stdout();
        // SAFETY: the child only calls signal, write and _exit (async-signal-safe).
        let child = match unsafe { cleanup::fork_tracked() } {
            ForkResult::Child => unsafe {
                lifeline::die_with_parent(me);
                let disposition =
                    if default_action { libc::SIG_DFL } else { libc::SIG_IGN };
                if !sigpipe_inherited {
                    libc::signal(libc::SIGPIPE, disposition); // default: the write kills us
                }
                let r = libc::write(tx.as_raw_fd(), b"x".as_ptr().cast(), 1); // no reader left
                libc::_exit(if r < 0 { Errno::last_raw() } else { 0 }) // exit status = errno
            },
            ForkResult::Parent { child } => child,
        };
        let status = waitpid_by(child, Deadline::after(NET)).unwrap_or_else(|| {
            let _ = kill(child, Signal::SIGKILL); // it neither wrote nor died
            Status(waitpid(child, None))
        });
        // ANCHOR_END: sigpipe
        cleanup::forget(child);
        report::sigpipe(&mut lab, default_action, child, status);
        results.push(status);
    }
    lab.check(
        "sigpipe_kills",
        results[0].signal() == Some(Signal::SIGPIPE),
        "with SIGPIPE at its default, writing to a pipe without readers kills the writer (wait status: signal SIGPIPE)",
    );
    lab.check(
        "epipe_when_ignored",
        results[1].code() == Some(Errno::EPIPE as i32),
        "with SIGPIPE ignored, write fails with EPIPE (32) instead",
    );

    lab.section("7. Throughput against memcpy");
    let total = (args.mib as usize) << 20;
    let mut rows = Vec::new();
    let mut all_bytes = true;
    // Both processes on one CPU (section 5 shows why placement matters); the fastest of
    // 3 runs, for the pipe and for memcpy alike: other programs can only add time.
    let _ = cpu::pin(cpus[0]); // the child inherits the affinity across fork
    for chunk in [4usize << 10, 64 << 10, 1 << 20] {
        let mut runs: Vec<(u64, Duration)> =
            (0..3).map(|_| pipe_throughput(me, chunk, total)).collect();
        runs.sort_by_key(|r| r.1);
        all_bytes &= runs.iter().all(|r| r.0 == total as u64);
        let (moved, took) = runs[0];
        let copy =
            (0..3).map(|_| memcpy_time(chunk, total)).min().unwrap_or_default();
        rows.push((chunk, moved, took, copy));
    }
    let _ = cpu::unpin();
    report::throughput(&mut lab, total, cpus[0], &rows);
    lab.check(
        "throughput_bytes_complete",
        all_bytes,
        "every byte written came out of the pipe, for every write size",
    );

    lab.finish()
}

// ANCHOR: reader
/// A reader child: reads until EOF, then exits 0. With `closes_own_write_end == false` it is
/// the classic bug: its own copy of the write end keeps the pipe open, so EOF never comes.
fn reader_child(
    rx: OwnedFd,
    tx: OwnedFd,
    closes_own_write_end: bool,
    buf: &mut [u8],
) -> ! {
    if closes_own_write_end {
        drop(tx); // close(2): now the parent's end is the only write end
    } else {
        std::mem::forget(tx); // the bug: the write end stays open in the reader itself
    }
    let mut total = 0;
    loop {
        match read(&rx, buf) {
            Ok(0) => break, // EOF
            Ok(n) if total == 0 => {
                total += n;
                say!("read {n} bytes; waiting for more or EOF");
            }
            Ok(n) => total += n,
            Err(Errno::EINTR) => {}
            Err(_) => unsafe { libc::_exit(1) },
        }
    }
    say!("EOF after {total} bytes");
    unsafe { libc::_exit(0) }
}
// ANCHOR_END: reader

// ANCHOR: watchdog
/// Wait for `kids`; past `deadline` a watchdog looks at them in /proc and, if they are asleep
/// in `wchan` (stuck, not just late), records them and kills them: the lab cannot hang.
fn wait_or_break(
    kids: &[Pid],
    wchan: &'static str,
    deadline: Duration,
) -> (Vec<Status>, bool, Vec<Stuck>) {
    let seen: Arc<Mutex<Vec<Stuck>>> = Arc::default();
    let (record, watched) = (seen.clone(), kids.to_vec());
    let dog = Watchdog::arm(deadline, move || {
        let seen = procfacts::poll_until(Duration::from_secs(5), || {
            // A bounded look at /proc: all asleep in `wchan`, or all ended?
            let now: Vec<Stuck> =
                watched.iter().map(|&p| report::state_wchan(p)).collect();
            if now.iter().all(|(_, s, _)| *s == 'Z') {
                Some(Vec::new()) // they ended by themselves, only late
            } else if now.iter().all(|(_, s, w)| *s == 'S' && w.contains(wchan)) {
                Some(now) // asleep in the pipe: stuck
            } else {
                None
            }
        });
        *record.lock().unwrap_or_else(|e| e.into_inner()) =
            seen.clone().unwrap_or_default();
        if seen.is_none_or(|v| !v.is_empty()) {
            for p in &watched {
                let _ = kill(*p, Signal::SIGKILL); // break the hang
            }
        }
    });
    // Returns when each ends or is killed (the watchdog kills by 5 s past the deadline).
    let statuses = kids.iter().map(|&k| Status(waitpid(k, None))).collect();
    let fired = dog.disarm();
    // ANCHOR_END: watchdog
    kids.iter().for_each(|&k| cleanup::forget(k));
    let stuck = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    (statuses, fired, stuck)
}

/// `writers` processes each write `records` records of `size` bytes (all bytes of a record
/// are the writer's letter) to one pipe, all released at once; the parent reads everything
/// and counts the records whose bytes are not all from one writer.
fn race(me: i32, writers: usize, records: usize, size: usize) -> Race {
    let (rx, tx) = pipe().or_die("pipe");
    let (gate_rx, gate_tx) = pipe().or_die("pipe"); // closing gate_tx releases every writer at once
    let mut kids = Vec::new();
    for w in 0..writers {
        let record = vec![b'A' + w as u8; size];
        flush_stdout();
        // ANCHOR: race
        // SAFETY: the child only reads, writes (buffers allocated before fork) and _exits.
        match unsafe { cleanup::fork_tracked() } {
            ForkResult::Child => {
                lifeline::die_with_parent(me);
                drop(gate_tx);
                let _ = read(&gate_rx, &mut [0u8; 1]); // wait for the gate: EOF when it closes
                for _ in 0..records {
                    if write_all(&tx, &record).is_err() {
                        unsafe { libc::_exit(1) }
                    }
                }
                unsafe { libc::_exit(0) }
            }
            ForkResult::Parent { child } => {
                kids.push(child);
            }
        }
        // ANCHOR_END: race
    }
    drop((gate_rx, tx));
    let dog = net(&kids);
    let mut all = vec![0u8; writers * records * size];
    drop(gate_tx); // go
    let got = read_full(&rx, &mut all).unwrap_or(0);
    for k in kids {
        let _ = waitpid(k, None);
        cleanup::forget(k);
    }
    dog.disarm();
    tally(&all[..got], writers, size)
}

/// `rounds` request/reply round trips (8-byte request `n`, reply `2n+1`) between the parent
/// and a child, each side pinned to its CPU if given. Returns the round-trip summary and how
/// many replies were correct.
fn ping_pong(
    me: i32,
    rounds: usize,
    cpus_pair: Option<(usize, usize)>,
) -> (Summary, usize) {
    let (req_rx, req_tx) = pipe().or_die("pipe");
    let (rep_rx, rep_tx) = pipe().or_die("pipe");
    if let Some((p, _)) = cpus_pair {
        let _ = cpu::pin(p);
    }
    flush_stdout();
    // ANCHOR: twoway
    // SAFETY: the child only reads, writes, pins itself and _exits.
    let child = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            lifeline::die_with_parent(me);
            drop((req_tx, rep_rx));
            if let Some((_, c)) = cpus_pair {
                let _ = cpu::pin(c); // sched_setaffinity: the replier's CPU
            }
            let mut req = [0u8; 8];
            while read_full(&req_rx, &mut req) == Ok(8) {
                let n = u64::from_le_bytes(req);
                if write_all(&rep_tx, &(2 * n + 1).to_le_bytes()).is_err() {
                    unsafe { libc::_exit(1) }
                }
            }
            unsafe { libc::_exit(0) } // EOF on requests: the parent is done
        }
        ForkResult::Parent { child } => child,
    };
    // ANCHOR_END: twoway
    // ANCHOR: twoway_loop
    drop((req_rx, rep_tx));
    let dog = net(&[child]);
    let mut samples = Vec::with_capacity(rounds);
    let mut correct = 0;
    for n in 0..rounds as u64 {
        let sw = Stopwatch::start();
        let mut rep = [0u8; 8];
        let sent = write_all(&req_tx, &n.to_le_bytes()).is_ok(); // request
        if !sent || read_full(&rep_rx, &mut rep) != Ok(8) {
            break; // the replier is gone: the missing replies are counted
        }
        samples.push(sw.elapsed());
        correct += (u64::from_le_bytes(rep) == 2 * n + 1) as usize;
    }
    drop(req_tx); // EOF for the child

    // ANCHOR_END: twoway_loop
    let _ = waitpid(child, None);
    dog.disarm();
    cleanup::forget(child);
    let _ = cpu::unpin();
    (Summary::of(&samples), correct)
}

/// Two children A and B exchange `bytes` each over two pipes. A writes then reads; B writes
/// then reads too (deadlock when `bytes` exceeds the capacity), or reads first. The watchdog
/// records the children stuck in pipe_write and kills them.
fn exchange(
    me: i32,
    bytes: usize,
    b_reads_first: bool,
    deadline: Duration,
) -> (Vec<Status>, bool, Vec<Stuck>) {
    let (a_rx, b_tx) = pipe().or_die("pipe"); // B -> A
    let (b_rx, a_tx) = pipe().or_die("pipe"); // A -> B
    let out = pattern(bytes, 4);
    let mut inbox = vec![0u8; bytes];
    let mut kids = Vec::new();
    for side in ['A', 'B'] {
        flush_stdout();
        // ANCHOR: exchange
        // SAFETY: the child only reads, writes (buffers allocated before fork) and _exits.
        match unsafe { cleanup::fork_tracked() } {
            ForkResult::Child => {
                lifeline::die_with_parent(me); // or a killed lab leaves them stuck
                let (rx, tx) =
                    if side == 'A' { (&a_rx, &a_tx) } else { (&b_rx, &b_tx) };
                let ok = if side == 'B' && b_reads_first {
                    let got = read_full(rx, &mut inbox) == Ok(bytes); // read first: A's write can finish
                    got && write_all(tx, &out).is_ok()
                } else {
                    let sent = write_all(tx, &out).is_ok(); // write first: blocks once the pipe is full
                    sent && read_full(rx, &mut inbox) == Ok(bytes)
                };
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            ForkResult::Parent { child } => {
                kids.push(child);
            }
        }
        // ANCHOR_END: exchange
    }
    drop((a_rx, a_tx, b_rx, b_tx));
    wait_or_break(&kids, "pipe_write", deadline)
}

/// `total` bytes through a pipe in writes of `chunk`, child writing, parent reading.
/// Returns the bytes received and the time from the start signal to EOF.
fn pipe_throughput(me: i32, chunk: usize, total: usize) -> (u64, Duration) {
    let src = pattern(chunk, 5);
    let mut dst = vec![0u8; chunk];
    let (rx, tx) = pipe().or_die("pipe");
    let (gate_rx, gate_tx) = pipe().or_die("pipe");
    flush_stdout();
    // SAFETY: the child only reads, writes (a buffer allocated before fork) and _exits.
    let child = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            lifeline::die_with_parent(me);
            drop((rx, gate_tx));
            let _ = read(&gate_rx, &mut [0u8; 1]); // wait for the start
            let mut sent = 0;
            while sent < total {
                if write_all(&tx, &src).is_err() {
                    unsafe { libc::_exit(1) }
                }
                sent += chunk;
            }
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => child,
    };
    drop((tx, gate_rx));
    let dog = net(&[child]);
    let sw = Stopwatch::start();
    drop(gate_tx); // start
    let moved = drain(&rx, &mut dst);
    let took = sw.elapsed();
    let _ = waitpid(child, None);
    dog.disarm();
    cleanup::forget(child);
    (moved as u64, took)
}

/// Non-blocking writes of PIPE_BUF, then single bytes, until EAGAIN; returns bytes written.
fn fill(tx: &OwnedFd) -> usize {
    let page = [7u8; PIPE_BUF];
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
fn bytes_queued(rx: &OwnedFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to the pointer we pass.
    unsafe { libc::ioctl(rx.as_raw_fd(), libc::FIONREAD, &mut n) };
    n as usize
}
