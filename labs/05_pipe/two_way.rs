//! Section 5: a conversation needs two pipes, one per direction. Request and reply,
//! timed with both sides on one CPU, on two CPUs and unpinned; then the deadlock two
//! pipes bring: both sides write more than a pipe holds before reading.

use crate::args::Args;
use crate::watch::{net, wait_or_break, Stuck, Waited};
use nix::sys::wait::waitpid;
use nix::unistd::{getpid, pipe, ForkResult};
use proclab::_exit;
use proclab::bytes::pattern;
use proclab::fdio::{read_full, write_all};
use proclab::measure::{fmt_bytes, fmt_duration};
use proclab::{check, cleanup, cpu, flush_stdout, lifeline, observe, Lab, OrDie};
use proclab::{Nanos, Stopwatch, Summary};
use std::time::Duration;

pub fn run(lab: &mut Lab, args: &Args, size: usize) {
    let exchange_fits = proclab::test_removes("exchange_fits"); // tests only
    let cpus = cpu::allowed();
    let placements = match cpus[..] {
        [a, b, ..] => vec![
            (format!("same CPU ({a} and {a})"), Some((a, a))),
            (format!("different CPUs ({a} and {b})"), Some((a, b))),
            ("unpinned".to_string(), None),
        ],
        _ => vec![("unpinned (one CPU)".to_string(), None)],
    };
    let rounds = args.rounds as usize;
    let (mut rows, mut medians, mut all_correct) = (Vec::new(), Vec::new(), true);
    for (label, pair) in placements {
        let (s, correct) = ping_pong(rounds, pair, &cpus);
        let [min, median, p99] = [s.min, s.median, s.p99].map(fmt_duration);
        rows.push(vec![label, min, median, p99, format!("{correct}/{rounds}")]);
        medians.push(s.median);
        all_correct &= correct == rounds;
    }
    let headers = ["placement", "min", "median", "p99", "correct replies"];
    lab.table("rtt_table", &headers, &rows);
    if let [same, cross, ..] = medians[..] {
        let ratio = cross.as_secs_f64() / same.as_secs_f64().max(1e-12);
        let held = cross > same;
        let word = if held { "held" } else { "did not hold" };
        observe!(
            lab,
            "rtt_ratio",
            "a round trip across CPUs took {ratio:.1}x one on the same CPU (medians; \
             two wake-ups each way round): slower across CPUs {word} on this run",
            same_ns = Nanos(same),
            cross_ns = Nanos(cross),
            ratio = (ratio * 100.0).round() / 100.0,
            held
        );
    }
    check!(
        lab,
        "request_reply",
        all_correct,
        "every request got its own correct reply over the two pipes"
    );

    let deadline = Duration::from_millis(args.deadline_ms);
    let mut held = [false; 2];
    for (i, b_reads_first) in [false, true].into_iter().enumerate() {
        let message = if exchange_fits { size / 2 } else { 2 * size }; // 2x what fits
        let (pids, Waited { statuses, fired, stuck }) =
            exchange(message, b_reads_first, deadline);
        let signalled: Vec<i32> = stuck.iter().map(|s| s.pid).collect();
        let (m, waits) = (fmt_bytes(message as u64), list(&statuses));
        let what = if !stuck.is_empty() {
            let who = list(&stuck);
            format!(
                "both sides wrote {m} before reading: stuck [{who}]; the watchdog \
                 killed both"
            )
        } else if b_reads_first {
            format!(
                "B read A's whole {m} before writing its own: both finished \
                 ({waits})"
            )
        } else {
            format!(
                "both sides wrote {m} first but were not seen stuck in pipe_write \
                 ({waits})"
            )
        };
        observe!(
            lab,
            "exchange",
            "{what}",
            pids = &pids,
            forked = true,
            sent = (!signalled.is_empty()).then_some("SIGKILL"),
            signalled = &signalled,
            message,
            b_reads_first,
            watchdog_fired = fired,
            stuck = &stuck,
            statuses = &statuses
        );
        held[i] = if b_reads_first {
            stuck.is_empty() && statuses.iter().all(|s| s.code() == Some(0))
        } else {
            let in_write =
                |s: &Stuck| s.state.0 == 'S' && s.wchan.contains("pipe_write");
            fired && stuck.len() == 2 && stuck.iter().all(in_write)
        };
    }
    check!(
        lab,
        "big_exchange_deadlocks",
        held[0],
        "two processes that each write more than the pipe holds before reading block \
         each other in pipe_write (see the deadlock lab)"
    );
    check!(
        lab,
        "reading_first_completes",
        held[1],
        "when one side reads before it writes, the same exchange completes"
    );
}

/// `rounds` round trips (8-byte request `n`, reply `2n + 1`) between the parent and a
/// child, each pinned to its CPU if given, the parent then `allowed` again: the
/// summary and how many replies were right.
fn ping_pong(
    rounds: usize,
    cpus: Option<(usize, usize)>,
    allowed: &[usize],
) -> (Summary, usize) {
    let parent = getpid().as_raw();
    let (req_rx, req_tx) = pipe().or_die("pipe");
    let (rep_rx, rep_tx) = pipe().or_die("pipe");
    if let Some((p, _)) = cpus {
        let _ = cpu::pin(p); // sched_setaffinity: the asker's CPU
    }
    flush_stdout();
    // ANCHOR: twoway
    // SAFETY: the child only reads, writes, pins itself and _exits.
    let child = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            lifeline::die_with_parent(parent);
            drop((req_tx, rep_rx));
            if let Some((_, c)) = cpus {
                let _ = cpu::pin(c); // the replier's CPU
            }
            let mut req = [0u8; 8];
            while read_full(&req_rx, &mut req) == Ok(8) {
                let n = u64::from_le_bytes(req);
                if write_all(&rep_tx, &(2 * n + 1).to_le_bytes()).is_err() {
                    _exit(1)
                }
            }
            _exit(0) // EOF on requests: the parent is done
        }
        ForkResult::Parent { child } => child,
    };
    // ANCHOR_END: twoway
    let dog = net(&[child], rounds);
    // ANCHOR: twoway_loop
    drop((req_rx, rep_tx));
    let (mut samples, mut correct) = (Vec::with_capacity(rounds), 0);
    for n in 0..rounds as u64 {
        let sw = Stopwatch::start();
        let mut rep = [0u8; 8];
        let asked = write_all(&req_tx, &n.to_le_bytes()).is_ok(); // request
        if !asked || read_full(&rep_rx, &mut rep) != Ok(8) {
            break; // the replier is gone: the missing replies count as wrong
        }
        samples.push(sw.elapsed());
        correct += (u64::from_le_bytes(rep) == 2 * n + 1) as usize;
    }
    drop(req_tx); // EOF for the child
    let _ = waitpid(child, None);
    // ANCHOR_END: twoway_loop
    dog.disarm();
    cleanup::forget(child);
    let _ = cpu::allow(allowed); // back to where it may run (a taskset is kept)
    if samples.is_empty() {
        samples.push(Duration::ZERO); // no reply came at all
    }
    (Summary::of(&samples), correct)
}

/// Two children A and B exchange `bytes` each over two pipes. A writes, then reads; B
/// does the same (a deadlock when `bytes` exceeds the capacity), or reads first.
/// Returns the two pids (A, B) and how the wait for them ended.
fn exchange(
    bytes: usize,
    b_reads_first: bool,
    deadline: Duration,
) -> (Vec<i32>, Waited) {
    let parent = getpid().as_raw();
    let (a_rx, b_tx) = pipe().or_die("pipe"); // B -> A
    let (b_rx, a_tx) = pipe().or_die("pipe"); // A -> B
    let out = pattern(bytes, 4);
    let mut inbox = vec![0u8; bytes];
    let mut kids = Vec::new();
    for side in ['A', 'B'] {
        flush_stdout();
        // ANCHOR: exchange
        // SAFETY: the child only reads, writes (buffers allocated before fork), _exits.
        match unsafe { cleanup::fork_tracked() } {
            ForkResult::Child => {
                lifeline::die_with_parent(parent); // or a killed lab leaves them stuck
                let (rx, tx) =
                    if side == 'A' { (&a_rx, &a_tx) } else { (&b_rx, &b_tx) };
                let ok = if side == 'B' && b_reads_first {
                    let got = read_full(rx, &mut inbox) == Ok(bytes); // A can finish
                    got && write_all(tx, &out).is_ok()
                } else {
                    let sent = write_all(tx, &out).is_ok(); // sleeps once it is full
                    sent && read_full(rx, &mut inbox) == Ok(bytes)
                };
                _exit(if ok { 0 } else { 1 })
            }
            ForkResult::Parent { child } => kids.push(child),
        }
        // ANCHOR_END: exchange
    }
    drop((a_rx, a_tx, b_rx, b_tx));
    let pids = kids.iter().map(|k| k.as_raw()).collect();
    (pids, wait_or_break(&kids, "pipe_write", deadline))
}

/// `a; b; c` of anything that displays.
fn list(items: &[impl std::fmt::Display]) -> String {
    items.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("; ")
}
