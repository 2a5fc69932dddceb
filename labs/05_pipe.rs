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

use clap::Parser;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{pipe, read, write, ForkResult, Pid};
use proclab::measure::{fmt_bytes, fmt_duration, fmt_rate};
use proclab::procfacts::{self, state_name};
use proclab::{cleanup, flush_stdout, say, Common, Lab, OrDie, Stopwatch, Summary, Watchdog};
use serde_json::json;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Pipes: intact bytes, EOF, capacity, PIPE_BUF atomicity, two-way, SIGPIPE, throughput.
#[derive(Parser)]
#[command(name = "pipe", version)]
struct Args {
    /// Size of the one-way message of section 1, in bytes.
    #[arg(long, default_value_t = 256 << 10, value_parser = clap::value_parser!(u32).range(1..=(64 << 20)))]
    bytes: u32,
    /// How long a reader or writer may sleep before the watchdog calls it stuck, in ms.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(50..=10_000))]
    deadline_ms: u64,
    /// Writer processes racing on one pipe in section 4.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..=16))]
    writers: u32,
    /// Records each writer writes in section 4.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1000))]
    records: u32,
    /// Size of the "big" records of section 4, in bytes (more than PIPE_BUF).
    #[arg(long, default_value_t = 128 << 10, value_parser = clap::value_parser!(u32).range(4097..=(1 << 20)))]
    big: u32,
    /// Size `F_SETPIPE_SZ` asks for in section 3, in bytes (at most /proc/sys/fs/pipe-max-size).
    #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u32).range(4096..=(1 << 20)))]
    pipe_size: u32,
    /// Round trips per CPU placement in section 5.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(10..=200_000))]
    rounds: u32,
    /// MiB sent through the pipe for each write size in section 7.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    mib: u32,
    #[command(flatten)]
    common: Common,
}

const PIPE_BUF: usize = libc::PIPE_BUF; // 4096 on Linux

fn main() {
    let args = Args::parse();
    let mut lab = Lab::start("pipe", &args.common);
    let deadline = Duration::from_millis(args.deadline_ms);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());

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
    drop(rx); // close(2) the parent's read end: only the child reads
    drop(back_tx);
    write_all(&tx, &msg).or_die("write"); // blocks whenever the pipe is full, until the child reads
    drop(tx); // close(2) the last write end: the child's next read returns 0 (EOF)
    let mut report = [0u8; 16];
    let got = read_full(&back_rx, &mut report).or_die("read");
    let status = waitpid(child, None).or_die("waitpid");
    cleanup::forget(child);
    // ANCHOR_END: oneway_parent
    let recv_len = u64::from_le_bytes(report[..8].try_into().unwrap_or_default());
    let recv_sum = u64::from_le_bytes(report[8..].try_into().unwrap_or_default());
    lab.observe(
        "oneway",
        json!({"sent_len": sent_len, "sent_sum": format!("{sent_sum:016x}"), "recv_len": recv_len,
               "recv_sum": format!("{recv_sum:016x}"), "report_bytes": got, "status": format!("{status:?}")}),
        format_args!(
            "parent sent {} (FNV-1a {sent_sum:016x}); child {child} counted {recv_len} bytes (FNV-1a {recv_sum:016x}); {status:?}",
            fmt_bytes(sent_len)
        ),
    );
    lab.check(
        "bytes_intact",
        got == 16 && recv_len == sent_len && recv_sum == sent_sum && status == WaitStatus::Exited(child, 0),
        format_args!("the {sent_len} bytes arrived intact: same length and checksum on both sides"),
    );

    lab.section("2. EOF needs every write end closed");
    let mut eof_ok = [false; 2];
    for (i, closes_own) in [false, true].into_iter().enumerate() {
        let (rx, tx) = pipe().or_die("pipe");
        flush_stdout();
        // SAFETY: the child only reads, closes, calls say! and _exits.
        let child = match unsafe { cleanup::fork_tracked() } {
            ForkResult::Child => reader_child(rx, tx, closes_own, &mut buf),
            ForkResult::Parent { child } => child,
        };
        drop(rx);
        write_all(&tx, b"hello, then nothing more").or_die("write");
        drop(tx); // the parent is done writing: its write end is closed

        // ANCHOR: watchdog
        let seen: Arc<Mutex<Option<(char, String)>>> = Arc::default();
        let record = seen.clone();
        let dog = Watchdog::arm(deadline, move || {
            // Past the deadline: is the reader asleep in a pipe read, or just late? (bounded)
            let seen = procfacts::poll_until(Duration::from_secs(5), || {
                let s = procfacts::state(child.as_raw()).unwrap_or('Z');
                let w = procfacts::wchan(child.as_raw()).unwrap_or_default();
                match s {
                    'Z' => Some(None), // it ended by itself, only late
                    'S' if w.contains("pipe_read") => Some(Some((s, w))),
                    _ => None,
                }
            });
            *record.lock().unwrap_or_else(|e| e.into_inner()) = seen.clone().flatten();
            if seen != Some(None) {
                let _ = kill(child, Signal::SIGKILL); // break the hang
            }
        });
        let status = waitpid(child, None).or_die("waitpid"); // returns when the child ends or is killed
        let fired = dog.disarm();
        // ANCHOR_END: watchdog
        cleanup::forget(child);
        let stuck = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (state, wchan) = stuck.clone().unwrap_or(('?', String::new()));
        lab.observe(
            "eof",
            json!({"reader_closes_write_end": closes_own, "watchdog_fired": fired, "stuck": stuck.is_some(), "state": state.to_string(),
                   "wchan": wchan, "status": format!("{status:?}"), "deadline_ms": args.deadline_ms}),
            if stuck.is_some() {
                format!(
                    "reader {child} still blocked {} ms after the last writer closed: {}, wchan {wchan}; watchdog killed it: {status:?}",
                    args.deadline_ms,
                    state_name(state)
                )
            } else if status == WaitStatus::Exited(child, 0) {
                format!("reader {child} saw EOF and exited by itself: {status:?}")
            } else {
                format!("reader {child} was not seen asleep in pipe_read; it ended {status:?}")
            },
        );
        eof_ok[i] = if closes_own {
            stuck.is_none() && status == WaitStatus::Exited(child, 0)
        } else {
            fired && stuck.is_some() && status == WaitStatus::Signaled(child, Signal::SIGKILL, false)
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
    lab.observe(
        "capacity",
        json!({"filled": filled, "f_getpipe_sz": size}),
        format_args!("non-blocking writes stopped with EAGAIN after {filled} bytes; F_GETPIPE_SZ says {size}"),
    );
    lab.check(
        "capacity_matches",
        filled == size && filled > 0,
        format_args!("a pipe nobody reads holds exactly F_GETPIPE_SZ = {size} bytes"),
    );

    let (rx, tx) = pipe().or_die("pipe");
    let total = 2 * size; // twice the capacity: the writer must wait for the reader
    let data = pattern(total, 2);
    flush_stdout();
    // ANCHOR: parked
    // SAFETY: the child only writes (a buffer allocated before fork), closes and _exits.
    let writer = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            drop(rx);
            let ok = write_all(&tx, &data).is_ok(); // blocks once the pipe is full
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => child,
    };
    drop(tx);
    let parked = procfacts::poll_until(Duration::from_secs(10), || {
        let (s, w) = (procfacts::state(writer.as_raw())?, procfacts::wchan(writer.as_raw())?);
        (s == 'S' && w.contains("pipe_write")).then_some((s, w))
    });
    let queued = bytes_queued(&rx); // FIONREAD: bytes in the pipe right now
    let drained = drain(&rx, &mut buf); // read until EOF: the writer wakes and finishes
    let status = waitpid(writer, None).or_die("waitpid");
    // ANCHOR_END: parked
    cleanup::forget(writer);
    let (pstate, pwchan) = parked.clone().unwrap_or(('?', String::new()));
    lab.observe(
        "parked",
        json!({"state": pstate.to_string(), "wchan": pwchan, "queued": queued, "drained": drained,
               "total": total, "status": format!("{status:?}")}),
        format_args!(
            "writer {writer} of {} sat in {} (wchan {pwchan}) with {queued} bytes queued; after draining {drained} bytes: {status:?}",
            fmt_bytes(total as u64),
            state_name(pstate)
        ),
    );
    lab.check(
        "writer_parked_until_drained",
        parked.is_some() && queued == size && drained == total && status == WaitStatus::Exited(writer, 0),
        "a blocking writer sleeps in pipe_write while the pipe is full, and finishes once the reader drains",
    );

    // ANCHOR: setsize
    let (rx, tx) = pipe().or_die("pipe");
    fcntl(&tx, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).or_die("fcntl");
    let granted = fcntl(&tx, FcntlArg::F_SETPIPE_SZ(args.pipe_size as i32)).or_die("fcntl F_SETPIPE_SZ") as usize;
    let now = fcntl(&tx, FcntlArg::F_GETPIPE_SZ).or_die("fcntl") as usize;
    let refilled = fill(&tx);
    // ANCHOR_END: setsize
    drop((rx, tx));
    lab.observe(
        "setpipe_sz",
        json!({"asked": args.pipe_size, "granted": granted, "f_getpipe_sz": now, "filled": refilled}),
        format_args!(
            "F_SETPIPE_SZ({}) granted {granted}; F_GETPIPE_SZ now {now}; the pipe filled up at {refilled} bytes",
            args.pipe_size
        ),
    );
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
    lab.observe(
        "split_write",
        json!({"asked": 2 * size, "written": partial, "capacity": size}),
        format_args!(
            "a non-blocking write of {} into an empty {} pipe returned {partial}: split",
            fmt_bytes(2 * size as u64),
            fmt_bytes(size as u64)
        ),
    );
    lab.observe(
        "atomic_write",
        json!({"room": room, "asked": PIPE_BUF, "result": format!("{small:?}"), "queued_before": before, "queued_after": after}),
        format_args!("with {room} bytes of room, a {PIPE_BUF}-byte write returned {small:?}; bytes queued {before} -> {after}"),
    );
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

    let mut race_rows = Vec::new();
    let mut small_intact = false;
    for rec in [PIPE_BUF, args.big as usize] {
        let r = race(args.writers as usize, args.records as usize, rec);
        let ok = r.torn == 0 && r.intact_per_writer.iter().all(|&n| n == args.records as usize);
        if rec <= PIPE_BUF {
            small_intact = ok && r.total_bytes == args.writers as usize * args.records as usize * rec;
        }
        lab.observe(
            "race",
            json!({"record": rec, "writers": args.writers, "records": r.records, "torn": r.torn,
                   "intact_per_writer": r.intact_per_writer, "bytes": r.total_bytes}),
            if r.torn == 0 && rec > PIPE_BUF {
                format!("{} writers x {} records of {}: none tore on this run (above PIPE_BUF the kernel no longer promises atomicity; it does not promise tearing)", args.writers, args.records, fmt_bytes(rec as u64))
            } else {
                format!("{} writers x {} records of {}: {} of {} records torn (mixed bytes of several writers)", args.writers, args.records, fmt_bytes(rec as u64), r.torn, r.records)
            },
        );
        race_rows.push(vec![
            fmt_bytes(rec as u64),
            if rec <= PIPE_BUF { "<= PIPE_BUF" } else { "> PIPE_BUF" }.to_string(),
            r.records.to_string(),
            r.torn.to_string(),
        ]);
    }
    lab.table("race_table", &["record", "", "records", "torn"], &race_rows);
    lab.check(
        "pipe_buf_records_intact",
        small_intact,
        format_args!(
            "{} writers at once, records of {PIPE_BUF} bytes: every record arrived whole",
            args.writers
        ),
    );

    lab.section("5. Two-way: request and reply, and the deadlock it risks");
    let mut rtt_rows = Vec::new();
    let mut replies_ok = true;
    let mut medians = Vec::new();
    let placements: &[(&str, Option<(usize, usize)>)] = if cpus >= 2 {
        &[
            ("same CPU (0 and 0)", Some((0, 0))),
            ("different CPUs (0 and 1)", Some((0, 1))),
            ("unpinned", None),
        ]
    } else {
        &[("unpinned (one CPU)", None)]
    };
    for &(label, cpus_pair) in placements {
        let (summary, correct) = ping_pong(args.rounds as usize, cpus_pair);
        replies_ok &= correct == args.rounds as usize;
        medians.push((label, summary.median));
        rtt_rows.push(vec![
            label.to_string(),
            fmt_duration(summary.min),
            fmt_duration(summary.median),
            fmt_duration(summary.p99),
            format!("{correct}/{}", args.rounds),
        ]);
    }
    lab.table(
        "rtt_table",
        &["placement", "min", "median", "p99", "correct replies"],
        &rtt_rows,
    );
    if cpus >= 2 {
        let ratio = medians[1].1.as_secs_f64() / medians[0].1.as_secs_f64().max(1e-12);
        lab.observe(
            "rtt_ratio",
            json!({"same_ns": medians[0].1.as_nanos() as u64, "cross_ns": medians[1].1.as_nanos() as u64, "ratio": (ratio * 100.0).round() / 100.0}),
            format_args!("a round trip across CPUs took {ratio:.1}x one on the same CPU (two wake-ups each way round)"),
        );
    }
    lab.check(
        "request_reply",
        replies_ok,
        "every request got its own correct reply over the two pipes",
    );

    let mut dl = [false; 2];
    for (i, reader_first) in [false, true].into_iter().enumerate() {
        let (fired, states, statuses) = exchange(2 * size, reader_first, deadline);
        let waits: Vec<String> = statuses.iter().map(|s| format!("{s:?}")).collect();
        lab.observe(
            "exchange",
            json!({"message": 2 * size, "b_reads_first": reader_first, "watchdog_fired": fired,
                   "stuck": states.iter().map(|(p, s, w)| json!({"pid": p, "state": s.to_string(), "wchan": w})).collect::<Vec<_>>(),
                   "statuses": waits}),
            if !states.is_empty() {
                let who: Vec<String> = states.iter().map(|(p, s, w)| format!("{p} {s} in {w}")).collect();
                format!("both sides wrote {} before reading: stuck [{}]; watchdog killed both", fmt_bytes(2 * size as u64), who.join(", "))
            } else if reader_first {
                format!("B read A's whole message before writing its own: both finished ({})", waits.join(", "))
            } else {
                format!("both sides wrote first but were not seen stuck in pipe_write: {}", waits.join(", "))
            },
        );
        dl[i] = if reader_first {
            states.is_empty() && statuses.iter().all(|s| matches!(s, WaitStatus::Exited(_, 0)))
        } else {
            fired && states.len() == 2 && states.iter().all(|(_, s, w)| *s == 'S' && w.contains("pipe_write"))
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
    let inherited_ign = old.sa_sigaction == libc::SIG_IGN;
    lab.observe(
        "sigpipe_disposition",
        json!({"ignored": inherited_ign}),
        format_args!(
            "this Rust program starts with SIGPIPE {}",
            if inherited_ign {
                "ignored (the Rust runtime sets SIG_IGN before main)"
            } else {
                "at its default (terminate)"
            }
        ),
    );
    let mut results = Vec::new();
    for default_action in [true, false] {
        // ANCHOR: sigpipe
        let (rx, tx) = pipe().or_die("pipe");
        drop(rx); // the only read end is closed: nobody can ever read
        flush_stdout();
        // SAFETY: the child only calls signal, write and _exit (async-signal-safe).
        let child = match unsafe { cleanup::fork_tracked() } {
            ForkResult::Child => unsafe {
                let disposition = if default_action { libc::SIG_DFL } else { libc::SIG_IGN };
                libc::signal(libc::SIGPIPE, disposition); // default: the write kills us
                let r = libc::write(tx.as_raw_fd(), b"x".as_ptr().cast(), 1); // no reader left
                libc::_exit(if r < 0 { Errno::last_raw() } else { 0 }) // exit status = errno
            },
            ForkResult::Parent { child } => child,
        };
        let status = waitpid(child, None).or_die("waitpid");
        // ANCHOR_END: sigpipe
        cleanup::forget(child);
        lab.observe(
            "sigpipe",
            json!({"sigpipe": if default_action { "default" } else { "ignored" }, "status": format!("{status:?}"),
                   "signal": if let WaitStatus::Signaled(_, s, _) = status { Some(s as i32) } else { None },
                   "exit": if let WaitStatus::Exited(_, c) = status { Some(c) } else { None }}),
            format_args!(
                "SIGPIPE {}: the writer {child} ended {status:?}",
                if default_action { "at default" } else { "ignored" }
            ),
        );
        results.push(status);
    }
    lab.check(
        "sigpipe_kills",
        matches!(results[0], WaitStatus::Signaled(_, Signal::SIGPIPE, _)),
        "with SIGPIPE at its default, writing to a pipe without readers kills the writer (wait status: signal SIGPIPE)",
    );
    lab.check(
        "epipe_when_ignored",
        matches!(results[1], WaitStatus::Exited(_, c) if c == Errno::EPIPE as i32),
        "with SIGPIPE ignored, write fails with EPIPE (32) instead",
    );

    lab.section("7. Throughput against memcpy");
    let total = (args.mib as usize) << 20;
    let mut rows = Vec::new();
    let mut all_bytes = true;
    // Both processes on CPU 0 (section 5 shows why placement matters); median of 3 runs.
    let allowed = sched_getaffinity(Pid::from_raw(0)).or_die("sched_getaffinity");
    pin(0); // the child inherits the affinity across fork
    for chunk in [4usize << 10, 64 << 10, 1 << 20] {
        let mut runs: Vec<(u64, Duration)> = (0..3).map(|_| pipe_throughput(chunk, total)).collect();
        runs.sort_by_key(|r| r.1);
        let (moved, took) = runs[1];
        let copy = memcpy_time(chunk, total);
        all_bytes &= runs.iter().all(|r| r.0 == total as u64);
        let ratio = copy.as_secs_f64() / took.as_secs_f64().max(1e-12);
        rows.push(vec![
            fmt_bytes(chunk as u64),
            fmt_bytes(moved),
            fmt_rate(moved, took),
            fmt_rate(total as u64, copy),
            format!("{:.0}%", ratio * 100.0),
        ]);
    }
    sched_setaffinity(Pid::from_raw(0), &allowed).or_die("sched_setaffinity"); // unpin
    lab.table(
        "throughput",
        &["write size (both on CPU 0)", "moved", "pipe", "memcpy", "pipe/memcpy"],
        &rows,
    );
    lab.check(
        "throughput_bytes_complete",
        all_bytes,
        "every byte written came out of the pipe, for every write size",
    );

    lab.finish("pipes deliver bytes intact and in order, end at EOF only when every write end is closed, hold F_GETPIPE_SZ bytes and block the writer beyond, keep writes of at most PIPE_BUF whole, and kill (SIGPIPE) or fail (EPIPE) a writer with no reader")
}

// ANCHOR: reader
/// A reader child: reads until EOF, then exits 0. With `closes_own_write_end == false` it is
/// the classic bug: its own copy of the write end keeps the pipe open, so EOF never comes.
fn reader_child(rx: OwnedFd, tx: OwnedFd, closes_own_write_end: bool, buf: &mut [u8]) -> ! {
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

/// What the writers' race left in the pipe.
struct Race {
    records: usize,
    torn: usize,
    intact_per_writer: Vec<usize>,
    total_bytes: usize,
}

/// `writers` processes each write `records` records of `size` bytes (all bytes of a record
/// are the writer's letter) to one pipe, all released at once; the parent reads everything
/// and counts the records whose bytes are not all from one writer.
fn race(writers: usize, records: usize, size: usize) -> Race {
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
    let mut all = vec![0u8; writers * records * size];
    drop(gate_tx); // go
    let got = read_full(&rx, &mut all).or_die("read");
    for k in kids {
        waitpid(k, None).or_die("waitpid");
        cleanup::forget(k);
    }
    let mut intact = vec![0; writers];
    let mut torn = 0;
    for rec in all[..got].chunks(size) {
        if rec.len() == size && rec.iter().all(|&b| b == rec[0]) && (rec[0].wrapping_sub(b'A') as usize) < writers {
            intact[(rec[0] - b'A') as usize] += 1;
        } else {
            torn += 1;
        }
    }
    Race {
        records: got.div_ceil(size),
        torn,
        intact_per_writer: intact,
        total_bytes: got,
    }
}

/// Pin the calling process to one CPU.
fn pin(cpu: usize) {
    let mut set = CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = sched_setaffinity(Pid::from_raw(0), &set); // 0 = the calling process
    }
}

/// `rounds` request/reply round trips (8-byte request `n`, reply `2n+1`) between the parent
/// and a child, each side pinned to its CPU if given. Returns the round-trip summary and how
/// many replies were correct.
fn ping_pong(rounds: usize, cpus_pair: Option<(usize, usize)>) -> (Summary, usize) {
    let (req_rx, req_tx) = pipe().or_die("pipe");
    let (rep_rx, rep_tx) = pipe().or_die("pipe");
    let allowed = sched_getaffinity(Pid::from_raw(0)).or_die("sched_getaffinity"); // to restore after
    if let Some((p, _)) = cpus_pair {
        pin(p);
    }
    flush_stdout();
    // ANCHOR: twoway
    // SAFETY: the child only reads, writes, pins itself and _exits.
    let child = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            drop((req_tx, rep_rx));
            if let Some((_, c)) = cpus_pair {
                pin(c); // sched_setaffinity: the replier's CPU
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
    let mut samples = Vec::with_capacity(rounds);
    let mut correct = 0;
    for n in 0..rounds as u64 {
        let sw = Stopwatch::start();
        write_all(&req_tx, &n.to_le_bytes()).or_die("write"); // request
        let mut rep = [0u8; 8];
        read_full(&rep_rx, &mut rep).or_die("read"); // wait for the reply
        samples.push(sw.elapsed());
        correct += (u64::from_le_bytes(rep) == 2 * n + 1) as usize;
    }
    drop(req_tx); // EOF for the child

    // ANCHOR_END: twoway_loop
    waitpid(child, None).or_die("waitpid");
    cleanup::forget(child);
    sched_setaffinity(Pid::from_raw(0), &allowed).or_die("sched_setaffinity"); // unpin
    (Summary::of(&samples), correct)
}

/// Two children A and B exchange `bytes` each over two pipes. A writes then reads; B writes
/// then reads too (deadlock when `bytes` exceeds the capacity), or reads first. A watchdog
/// records the stuck children and kills them. Returns (fired, stuck [(pid, state, wchan)], statuses).
fn exchange(
    bytes: usize,
    b_reads_first: bool,
    deadline: Duration,
) -> (bool, Vec<(i32, char, String)>, Vec<WaitStatus>) {
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
                let (rx, tx) = if side == 'A' { (&a_rx, &a_tx) } else { (&b_rx, &b_tx) };
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
    let seen: Arc<Mutex<Vec<(i32, char, String)>>> = Arc::default();
    let record = seen.clone();
    let watched = kids.clone();
    let dog = Watchdog::arm(deadline, move || {
        // Both asleep in pipe_write (stuck), or both ended (only late)? Bounded look at /proc.
        let seen = procfacts::poll_until(Duration::from_secs(5), || {
            let now: Vec<(i32, char, String)> = watched
                .iter()
                .map(|p| {
                    let s = procfacts::state(p.as_raw()).unwrap_or('Z');
                    (p.as_raw(), s, procfacts::wchan(p.as_raw()).unwrap_or_default())
                })
                .collect();
            if now.iter().all(|(_, s, _)| *s == 'Z') {
                Some(Vec::new())
            } else if now.iter().all(|(_, s, w)| *s == 'S' && w.contains("pipe_write")) {
                Some(now)
            } else {
                None
            }
        });
        *record.lock().unwrap_or_else(|e| e.into_inner()) = seen.clone().unwrap_or_default();
        if seen.is_none_or(|v| !v.is_empty()) {
            for p in &watched {
                let _ = kill(*p, Signal::SIGKILL); // break the hang
            }
        }
    });
    let statuses: Vec<WaitStatus> = kids.iter().map(|&k| waitpid(k, None).or_die("waitpid")).collect();
    let fired = dog.disarm();
    for k in kids {
        cleanup::forget(k);
    }
    let stuck = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    (fired, stuck, statuses)
}

/// `total` bytes through a pipe in writes of `chunk`, child writing, parent reading.
/// Returns the bytes received and the time from the start signal to EOF.
fn pipe_throughput(chunk: usize, total: usize) -> (u64, Duration) {
    let src = pattern(chunk, 5);
    let mut dst = vec![0u8; chunk];
    let (rx, tx) = pipe().or_die("pipe");
    let (gate_rx, gate_tx) = pipe().or_die("pipe");
    flush_stdout();
    // SAFETY: the child only reads, writes (a buffer allocated before fork) and _exits.
    let child = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
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
    let sw = Stopwatch::start();
    drop(gate_tx); // start
    let moved = drain(&rx, &mut dst);
    let took = sw.elapsed();
    waitpid(child, None).or_die("waitpid");
    cleanup::forget(child);
    (moved as u64, took)
}

/// The time memcpy takes to copy `total` bytes in pieces of `chunk` (same buffers sizes as the pipe).
fn memcpy_time(chunk: usize, total: usize) -> Duration {
    let src = pattern(chunk, 5);
    let mut dst = vec![0u8; chunk];
    let sw = Stopwatch::start();
    for _ in 0..total / chunk {
        dst.copy_from_slice(std::hint::black_box(&src)); // memcpy
        std::hint::black_box(&mut dst);
    }
    sw.elapsed()
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

/// Read until EOF; returns the bytes read.
fn drain(rx: &OwnedFd, buf: &mut [u8]) -> usize {
    let mut n = 0;
    loop {
        match read(rx, buf) {
            Ok(0) => return n,
            Ok(k) => n += k,
            Err(Errno::EINTR) => {}
            Err(e) => proclab::die("read", e),
        }
    }
}

/// Read what a non-blocking pipe holds now.
fn drain_nonblocking(rx: &OwnedFd, buf: &mut [u8]) {
    fcntl(rx, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).or_die("fcntl");
    while let Ok(k) = read(rx, buf) {
        if k == 0 {
            break;
        }
    }
}

/// write(2) until all of `buf` is written. Async-signal-safe.
fn write_all(fd: impl AsFd, mut buf: &[u8]) -> nix::Result<()> {
    let fd = fd.as_fd();
    while !buf.is_empty() {
        match write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// read(2) until `buf` is full or EOF; returns the bytes read. Async-signal-safe.
fn read_full(fd: impl AsFd, buf: &mut [u8]) -> nix::Result<usize> {
    let fd = fd.as_fd();
    let mut n = 0;
    while n < buf.len() {
        match read(fd, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, continued from `h` over `bytes` (no allocation: fine in a child).
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `len` pseudo-random bytes (xorshift), different for each `seed`.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
