//! Scenario 4: two processes that each write more than a pipe holds before they read.
//! Both sleep in pipe_write with both pipes full: a deadlock with no lock at all. Broken
//! by killing both; the fix: one side reads first.

use crate::procview::queued;
use crate::watch::{hold, reap_all, since};
use crate::{Args, Row};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{getpid, pipe2, ForkResult, Pid};
use proclab::_exit;
use proclab::fdio::{read_full, write_all};
use proclab::measure::fmt_duration;
use proclab::{
    check, cleanup, clock, flush_stdout, lifeline, observe, procfacts, say,
};
use proclab::{Lab, OrDie, State, Status};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

// ANCHOR: pipe_child
/// A child: send `msg` on `out`, then receive as many bytes on `inp` (or
/// the other way round). Exits 0 when every byte went out and came in.
fn pipe_child(
    out: BorrowedFd,
    inp: BorrowedFd,
    msg: &[u8],
    buf: &mut [u8],
    read_first: bool,
) -> ! {
    let n = buf.len();
    let (sent, got) = (|| write_all(out, msg).is_ok(), |b| read_full(inp, b));
    let ok = match read_first {
        true => got(buf) == Ok(n) && sent(), // B in the fix: read, then answer
        false => sent() && got(buf) == Ok(n), // the deadlock: both write first
    };
    // _exit is async-signal-safe; the child skips the parent's code.
    _exit(if ok { 0 } else { 1 })
}
// ANCHOR_END: pipe_child

/// Fork a child that runs pipe_child: it writes into `out` and reads from `inp`.
fn fork_peer(
    out: &OwnedFd,
    inp: &OwnedFd,
    msg: &[u8],
    buf: &mut [u8],
    read_first: bool,
) -> Pid {
    let lab = getpid().as_raw();
    flush_stdout();
    // SAFETY: the child only writes, reads and _exits; its buffers exist already.
    match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            lifeline::die_with_parent(lab); // even a SIGKILLed lab takes it along
            pipe_child(out.as_fd(), inp.as_fd(), msg, buf, read_first)
        }
        ForkResult::Parent { child } => child,
    }
}

/// A writer asleep with its outgoing pipe full, as a fact.
#[derive(serde::Serialize)]
struct Writer {
    pid: i32,
    state: State,
    wchan: String,
    queued_in_its_pipe: i32,
}

/// In the lab: the pipe deadlock, seen and broken; then the fix.
pub fn run(lab: &mut Lab, args: &Args) -> Row {
    let deadline = args.deadline();
    let (ab_r, ab_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // A -> B
    let (ba_r, ba_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // B -> A
    let cap = fcntl(&ab_w, FcntlArg::F_GETPIPE_SZ).or_die("fcntl") as usize;
    // Tests only: a message that fits in the pipe, so that no writer has to wait.
    let small = proclab::test_removes("small_pipe_message");
    let len = if small { cap / 2 } else { 2 * cap };
    let msg = vec![0x5au8; len]; // allocated before fork: the children only write it
    let mut buf = vec![0u8; len];
    say!(
        "pipe capacity {cap} bytes; A and B each write {len} bytes before reading"
    );
    let t0 = clock::lab_ns();
    // ANCHOR: pipes
    let a = fork_peer(&ab_w, &ba_r, &msg, &mut buf, false); // A: write, then read
    let b = fork_peer(&ba_w, &ab_r, &msg, &mut buf, false); // B: the same
    drop((ab_w, ba_w)); // we keep the read ends, to count what waits in each pipe
    let in_write =
        |p: Pid| procfacts::wchan(p.as_raw()).filter(|w| w.contains("pipe_write"));
    let asleep = |p: Pid| procfacts::state(p.as_raw()) == Some('S');
    let seen = procfacts::poll_until(deadline, || {
        let (wa, wb) = (in_write(a)?, in_write(b)?);
        let full = queued(&ab_r) as usize == cap && queued(&ba_r) as usize == cap;
        (full && asleep(a) && asleep(b)).then(|| (wa, wb, since(t0)))
    });
    // ANCHOR_END: pipes
    if let Some((wa, wb, after)) = &seen {
        let (qa, qb, t) = (queued(&ab_r), queued(&ba_r), fmt_duration(*after));
        let writer = |pid: Pid, wchan: &String, queued_in_its_pipe| Writer {
            pid: pid.as_raw(),
            state: State('S'),
            wchan: wchan.clone(),
            queued_in_its_pipe,
        };
        observe!(lab, "pipes_blocked",
            "A {a}: state S in {wa}, pipe A->B holds {qa} of {cap} bytes; B {b}: state S in {wb}, pipe B->A holds {qb}\n    A waits for B to read; B waits for A to read: a cycle, seen {t} after the start",
            scenario = "pipes", capacity = cap, message = len,
            writers = [writer(a, wa, qa), writer(b, wb, qb)],
            detected_after_us = after.as_micros() as u64);
    }
    lab.show_tree(getpid());
    check!(lab, "pipes_blocked", seen.is_some(),
        "pipes: both writers asleep (S) in pipe_write with both pipes full: each waits for the other to read");
    hold(lab, args.hold_ms, a, "`cat /proc/PID/wchan` or `ls -l /proc/PID/fd`");
    let _ = kill(a, Signal::SIGKILL); // nothing will ever read: end both
    let _ = kill(b, Signal::SIGKILL);
    let (sa, sb) = (Status(waitpid(a, None)), Status(waitpid(b, None)));
    cleanup::forget(a);
    cleanup::forget(b);
    let took = since(t0);
    let t = fmt_duration(took);
    observe!(
        lab,
        "broken",
        "broken: A {sa}; B {sb}; {t} after the start",
        scenario = "pipes",
        pids = [a.as_raw(), b.as_raw()],
        signalled = [a.as_raw(), b.as_raw()],
        sent = "SIGKILL",
        statuses = [sa, sb],
        ended_after_ms = took.as_millis() as u64
    );
    let killed = |s: Status| s.signal() == Some(Signal::SIGKILL);
    let broken = check!(lab, "pipes_broken",
        killed(sa) && killed(sb) && took <= args.ends_by(),
        "pipes: both writers were killed and reaped within deadline + 1 s (+ --hold-ms)");
    drop((ab_r, ba_r));

    // The fix: a protocol in which B reads before it writes.
    let (ab_r, ab_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2");
    let (ba_r, ba_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2");
    let t_fix = clock::lab_ns();
    let a = fork_peer(&ab_w, &ba_r, &msg, &mut buf, false); // A: write, then read
    let b = fork_peer(&ba_w, &ab_r, &msg, &mut buf, true); // B: read, then write
    drop((ab_w, ba_w, ab_r, ba_r));
    let ([sa, sb], fired) = reap_all([a, b], deadline);
    let took = since(t_fix);
    let t = fmt_duration(took);
    observe!(
        lab,
        "fix",
        "B reads first: {len} bytes each way; A {sa}; B {sb}; in {t}",
        scenario = "pipes",
        finished = !fired,
        bytes_each_way = len,
        statuses = [sa, sb],
        elapsed_us = took.as_micros() as u64
    );
    let fix_ok = check!(lab, "pipes_fix_finished",
        sa.code() == Some(0) && sb.code() == Some(0) && !fired,
        "pipes: when one side reads before writing, every byte crosses both ways and both finish");
    let detected = seen.map(|s| s.2);
    let cycle = detected.is_some();
    Row { scenario: "pipes", cycle, detected, broken, fix: "B reads first", fix_ok }
}
