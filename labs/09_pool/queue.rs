//! Section 4: a pipe shrunk to one page is a bounded queue between one producer and
//! several consumers: a full queue puts the producer to sleep in write(2)
//! (back-pressure), a poison pill per consumer ends them, and the messages are shared.

use super::map::share_rows;
use super::pool::{reap_or_kill, shared};
use super::task::work;
use super::wire::{kind_seq, message, DATA, MSG, PILL};
use super::worker::{close_all, leave};
use super::Args;
use nix::fcntl::OFlag;
use nix::unistd::{getpid, pipe2, read, ForkResult, Pid};
use proclab::clock::now_ns;
use proclab::fdio::write_all;
use proclab::lifeline::die_with_parent;
use proclab::measure::fmt_duration;
use proclab::procfacts::{self, State};
use proclab::{check, cleanup, flush_stdout, observe, say, say_as, Lab, OrDie};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::Duration;

const MAX_CONSUMERS: usize = 16;
const MESSAGES: u64 = 2000;
const CONSUMER_ROUNDS: u32 = 5000; // a few µs of work per message

/// What the children count, in shared memory.
struct Board {
    sent: AtomicU64,
    longest_write_ns: AtomicU64,
    consumers: [Counts; MAX_CONSUMERS],
}

struct Counts {
    taken: AtomicU64,
    seq_sum: AtomicU64,
    pill: AtomicU32,
    torn: AtomicU32,
}

pub fn run(lab: &mut Lab, args: &Args) {
    let (consumers, hold_ms) = (args.consumers as usize, args.hold_ms);
    let unbounded = proclab::test_removes("unbounded_queue"); // tests: never full
    let pills = consumers - proclab::test_removes("lost_queue_pill") as usize;
    let (lab_pid, board) = (getpid().as_raw(), shared::<Board>());
    // ANCHOR: queue
    // The queue is a pipe, shrunk to one page: it holds 4096 / 16 = 256 messages.
    let (q_r, q_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2");
    if !unbounded {
        // SAFETY: fcntl on our own pipe.
        unsafe { libc::fcntl(q_w.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    }
    // SAFETY: fcntl on our own pipe.
    let cap = unsafe { libc::fcntl(q_w.as_raw_fd(), libc::F_GETPIPE_SZ) } as u64;
    let (gate_r, gate_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // shut for now
    let not_mine = [q_w.as_raw_fd(), gate_w.as_raw_fd()];
    let mut consumer_pids = Vec::new();
    for k in 0..consumers {
        flush_stdout();
        // SAFETY: the child only calls prctl, close, read, _exit and atomics.
        match unsafe { cleanup::fork_tracked() } {
            ForkResult::Child => {
                die_with_parent(lab_pid); // even if the lab is killed with SIGKILL
                close_all(&not_mine); // not a writer: EOF means no producer left
                let me = &board.consumers[k];
                consumer(k, q_r.as_fd(), gate_r.as_fd(), me)
            }
            ForkResult::Parent { child } => consumer_pids.push(child),
        }
    }
    // ANCHOR_END: queue
    flush_stdout();
    // SAFETY: the child only calls prctl, write, clock_gettime, _exit and atomics.
    let producer = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            die_with_parent(lab_pid);
            // Not a reader: EPIPE would mean the consumers are gone.
            close_all(&[q_r.as_raw_fd(), gate_r.as_raw_fd(), gate_w.as_raw_fd()]);
            producer(q_w.as_fd(), pills, board)
        }
        ForkResult::Parent { child } => child,
    };
    drop((q_w, gate_r)); // the children's ends; the lab keeps q_r to count bytes

    // ANCHOR: backpressure
    let full = procfacts::poll_until(args.deadline(), || {
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes the number of unread bytes in the pipe.
        unsafe { libc::ioctl(q_r.as_raw_fd(), libc::FIONREAD, &mut queued) };
        let state = State::of(producer.as_raw());
        if state.0 == 'S' && queued as u64 == cap {
            return Some(Some((state, queued as u64, now_ns())));
        }
        // All sent and never full: it will not fill now.
        (board.sent.load(Acquire) == MESSAGES).then_some(None)
    })
    .flatten();
    let sent = board.sent.load(Acquire);
    // Just asleep, it may still be on its CPU, and wchan reads 0: look again.
    let wchan = procfacts::poll_until(Duration::from_secs(1), || {
        procfacts::wchan(producer.as_raw())
    });
    // ANCHOR_END: backpressure
    let (state, queued, full_at) = full.unwrap_or((State('?'), 0, now_ns()));
    let wchan = wchan.unwrap_or_else(|| "?".into());
    let held = queued / MSG as u64;
    observe!(lab, "back_pressure",
        "queue of {capacity} bytes holds {queued_bytes} ({held} messages); producer {producer_pid} has sent {sent} and is in state {state}, asleep in {wchan}",
        producer_pid = producer.as_raw(), state, wchan, queued_bytes = queued,
        capacity = cap, sent, capacity_messages = cap / MSG as u64);
    if !lab.stepping() && hold_ms > 0 {
        say!("the consumers stay shut out for {hold_ms} ms: try `cat /proc/{producer}/wchan` (or use --step)");
        std::thread::sleep(Duration::from_millis(hold_ms)); // only so a person can look
    }
    let still = board.sent.load(Acquire);
    let closed_ns = now_ns() - full_at; // how long the queue stayed full, seen from here
    let opened = write_all(&gate_w, &[1u8; MAX_CONSUMERS][..consumers]); // the gate
    drop((gate_w, q_r)); // no reader left but the consumers: EPIPE if they die

    let (status, _) = reap_or_kill(producer, args.deadline());
    let blocked_ns = board.longest_write_ns.load(Acquire);
    let (closed, blocked) = (
        fmt_duration(Duration::from_nanos(closed_ns)),
        fmt_duration(Duration::from_nanos(blocked_ns)),
    );
    observe!(lab, "producer_blocked",
        "the queue stayed full {closed} and the producer had still sent {sent_while_held}; its longest write(2) blocked for {blocked}; then it {status}",
        sent_while_held = still, longest_write_us = blocked_ns / 1000,
        held_full_us = closed_ns / 1000, status, gate_bytes = opened.map_or(0, |_| consumers),
        producer_pid = producer.as_raw());
    check!(lab, "back_pressure",
        state.0 == 'S' && queued == cap && sent == cap / MSG as u64 && still == sent && blocked_ns >= closed_ns,
        "with the queue full the producer slept inside write(2) and sent nothing more until consumers took messages");

    // ANCHOR: pills
    let mut counts = Vec::new(); // messages per consumer, for the table
    let (mut exits, mut taken_sum, mut seq_sum, mut torn) = (0, 0, 0, 0);
    for (k, &pid) in consumer_pids.iter().enumerate() {
        let (status, _) = reap_or_kill(pid, args.deadline()); // each one's end
        let c = &board.consumers[k];
        let (taken, pill) = (c.taken.load(Acquire), c.pill.load(Acquire));
        exits += (status.code() == Some(0) && pill == 1) as usize;
        (taken_sum, seq_sum) =
            (taken_sum + taken, seq_sum + c.seq_sum.load(Acquire));
        torn += c.torn.load(Acquire);
        // ANCHOR_END: pills
        let read_pill = if pill == 1 { "read its pill" } else { "read NO pill" };
        observe!(
            lab,
            "consumer_exit",
            "consumer {pid} took {taken} messages, {read_pill}; waitpid: {status}",
            pid = pid.as_raw(),
            status,
            pill,
            taken
        );
        counts.push((pid, taken));
    }
    check!(lab, "poison_pill_all", exits == consumers,
        "{exits} of {consumers} consumers read a poison pill after the last message and exited 0");
    let want_seq_sum = MESSAGES * (MESSAGES - 1) / 2;
    observe!(lab, "queue_totals",
        "{sent} messages sent, {taken} taken, sum of sequence numbers {seq_sum} (want {want_seq_sum}), {torn} torn reads",
        sent = MESSAGES, taken = taken_sum, seq_sum, want_seq_sum, torn);
    check!(lab, "queue_no_loss", taken_sum == MESSAGES && seq_sum == want_seq_sum && torn == 0,
        "every message was taken exactly once: 16-byte writes and reads on a pipe are never split");
    fairness(lab, &counts);
}

/// How the messages were shared: shown, not judged (the scheduler decides).
fn fairness(lab: &mut Lab, counts: &[(Pid, u64)]) {
    let rows = share_rows(counts, MESSAGES);
    lab.table("tasks_per_consumer", &["consumer pid", "messages", "share"], &rows);
    let most = counts.iter().map(|t| t.1).max().unwrap_or(0);
    let least = counts.iter().map(|t| t.1).min().unwrap_or(0);
    let (consumers, even_share) = (counts.len(), MESSAGES / counts.len() as u64);
    observe!(lab, "fairness",
        "the busiest consumer took {most}, the least busy {least}; an even split is {even_share}",
        most, least, consumers, even_share);
}

// ANCHOR: producer
/// The producer, after fork: write, clock_gettime, atomics, _exit.
fn producer(queue: BorrowedFd, pills: usize, b: &Board) -> ! {
    for seq in 0..MESSAGES {
        let t0 = now_ns();
        let _ = write_all(queue, &message(DATA, seq)); // asleep while full
        b.longest_write_ns.fetch_max(now_ns() - t0, AcqRel);
        b.sent.fetch_add(1, AcqRel);
    }
    for _ in 0..pills {
        let _ = write_all(queue, &message(PILL, 0)); // one each, at the end
    }
    leave(0)
}
// ANCHOR_END: producer

// ANCHOR: consumer
/// A consumer, after fork: read, atomics, _exit.
fn consumer(k: usize, queue: BorrowedFd, gate: BorrowedFd, me: &Counts) -> ! {
    let _ = read(gate, &mut [0u8; 1]); // blocks until the lab opens the gate
    let mut m = [0u8; MSG];
    loop {
        let n = read(queue, &mut m).unwrap_or(0); // exactly one message
        if n != MSG {
            me.torn.fetch_add((n > 0) as u32, AcqRel);
            leave(1); // EOF before a pill, or half a message
        }
        let (kind, seq) = kind_seq(&m);
        if kind == PILL {
            me.pill.store(1, Release);
            say_as!("consumer", "{k}: poison pill, exiting");
            leave(0);
        }
        work(seq, CONSUMER_ROUNDS);
        me.taken.fetch_add(1, AcqRel);
        me.seq_sum.fetch_add(seq, AcqRel);
    }
}
// ANCHOR_END: consumer
