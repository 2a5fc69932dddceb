//! # fork: one process becomes two
//!
//! `fork()` makes a copy of the calling process: same code, same memory contents, same open
//! descriptors, a new pid. It returns twice: 0 in the child, the child's pid in the parent.
//! Part 1 shows that the child's memory is a copy: the child changes a variable, the parent's
//! variable at the very same address keeps its value. Part 2 forks N children, each with its
//! own fate (exit with its own code, raise SIGKILL on itself, or be killed by the parent with
//! SIGTERM), and the parent reaps every one with `waitpid(-1)` and decodes its status.
//!
//! What to look for: the same address printed by parent and child with different values;
//! the wait statuses `Exited(pid, code)` and `Signaled(pid, SIGKILL/SIGTERM)` matching the
//! fate each child was given; the order in which children report and are reaped.
//!
//! Caveats: who runs first after `fork` (parent or child) is up to the scheduler and is
//! reported as an observation, never relied on. On a machine with several CPUs both run at
//! once. The order of reaping is the order of death, not of creation.

use clap::Parser;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, getpid, pipe, read, write, ForkResult, Pid};
use proclab::measure::fmt_duration;
use proclab::{cleanup, flush_stdout, procfacts, say, Common, Lab, OrDie};
use serde_json::json;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// fork: the child gets a copy of the parent's memory; the parent reaps every child and
/// decodes how it ended (exit code or signal).
#[derive(Parser)]
#[command(name = "fork", version)]
struct Args {
    /// How many children to fork in part 2, each with its own fate.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    children: u32,
    /// Leave the children unreaped this long (ms) before waiting, to look at them with ps.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    linger: u64,
    #[command(flatten)]
    common: Common,
}

/// How a child of part 2 ends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fate {
    /// `_exit(code)`.
    Exit(i32),
    /// `raise(SIGKILL)`: the child kills itself.
    RaiseSigkill,
    /// The child blocks; the parent sends it SIGTERM.
    KilledByParent,
}

/// The fate of child `i` of `n`: the last is killed by the parent, every fourth raises
/// SIGKILL, the others exit with their own code (10 + i).
fn fate_of(i: u32, n: u32) -> Fate {
    if i + 1 == n {
        Fate::KilledByParent
    } else if i % 4 == 2 {
        Fate::RaiseSigkill
    } else {
        Fate::Exit(10 + i as i32)
    }
}

/// What `waitpid` should report for a fate: (exit code, signal).
fn expected(f: Fate) -> (Option<i32>, Option<Signal>) {
    match f {
        Fate::Exit(code) => (Some(code), None),
        Fate::RaiseSigkill => (None, Some(Signal::SIGKILL)),
        Fate::KilledByParent => (None, Some(Signal::SIGTERM)),
    }
}

/// CLOCK_MONOTONIC in ns (one clock for all CPUs; clock_gettime is async-signal-safe).
fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Write `N` words in one write(2) (at most 24 bytes < PIPE_BUF: never interleaved with
/// another child's). Async-signal-safe.
fn send_words<const N: usize>(fd: &OwnedFd, words: [u64; N]) {
    let mut buf = [0u8; 24];
    for (i, w) in words.iter().enumerate() {
        buf[i * 8..i * 8 + 8].copy_from_slice(&w.to_ne_bytes());
    }
    let _ = write(fd, &buf[..N * 8]);
}

/// Read `N` words written by [`send_words`]; None at EOF.
fn read_words<const N: usize>(fd: &OwnedFd) -> Option<[u64; N]> {
    let mut buf = [0u8; 24];
    let mut got = 0;
    while got < N * 8 {
        match read(fd, &mut buf[got..N * 8]) {
            Ok(0) => return None,
            Ok(n) => got += n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => proclab::die("read", e),
        }
    }
    let mut words = [0u64; N];
    for (i, w) in words.iter_mut().enumerate() {
        *w = u64::from_ne_bytes(
            buf[i * 8..i * 8 + 8].try_into().unwrap_or_default(),
        );
    }
    Some(words)
}

// ANCHOR: fates
/// In a child of part 2: meet the fate it was given. Async-signal-safe; never returns.
fn live_out(fate: Fate, hold_rx: &OwnedFd, hold_tx: &OwnedFd) -> ! {
    match fate {
        Fate::Exit(code) => say!("exiting with status {code}"),
        Fate::RaiseSigkill => {
            say!("raising SIGKILL on myself");
            let _ = nix::sys::signal::raise(Signal::SIGKILL); // dies here: no status of its own
        }
        Fate::KilledByParent => {
            say!("blocking in read(2) until my parent kills me");
            // SAFETY: closes this child's copy of the write end, so EOF if the parent dies.
            unsafe { libc::close(hold_tx.as_raw_fd()) };
            let _ = read(hold_rx, &mut [0u8; 1]); // SIGTERM arrives here
        }
    }
    let code = if let Fate::Exit(code) = fate { code } else { 1 };
    // SAFETY: _exit leaves at once, without running the parent's destructors.
    unsafe { libc::_exit(code) }
}
// ANCHOR_END: fates

/// "parent by 35.0 µs" / "child by 120.0 µs".
fn who_first(parent_ns: u64, child_ns: u64) -> (&'static str, u64) {
    if child_ns < parent_ns {
        ("child", parent_ns - child_ns)
    } else {
        ("parent", child_ns - parent_ns)
    }
}

fn main() {
    let args = Args::parse();
    let mut lab = Lab::start(
        "fork",
        "fork gives the child a copy of the parent's memory (its writes stay its own); the parent reaps every child with waitpid and reads from the status how it ended: exit code or killing signal",
        &args.common,
    );
    let me = getpid();

    lab.section("1. The child's memory is a copy");
    // ANCHOR: copy
    let mut value: u64 = 1; // in the parent's memory; fork gives the child its own copy
    let (rx, tx) = pipe().or_die("pipe"); // the child reports what it saw through this

    // Flush, or text still in the buffer would be printed by the child too.
    flush_stdout();
    // SAFETY: the child only writes its own memory, calls say! and write(2), then _exit.
    let child = match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            let started = now_ns();
            value = 99; // changes the child's copy only
            let addr = &value as *const u64 as u64;
            say!("I set value = {value} at address {addr:#x}");
            // One write(2) (async-signal-safe): what we saw, where, and when we started.
            send_words(&tx, [value, addr, started]);
            // SAFETY: _exit leaves at once, without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => child,
    };
    // ANCHOR_END: copy
    let parent_ns = now_ns();
    // ANCHOR: copy_parent
    cleanup::track(child); // killed and reaped on every way out
    drop(tx); // keep only the child's write end open, so EOF means the child is gone
    let report = read_words::<3>(&rx); // blocks until the child has written
    let status = waitpid(child, None).or_die("waitpid"); // the child has exited: reap it
    cleanup::forget(child);
    // SAFETY: a plain read of our own live variable; volatile so that it really comes from
    // memory, not from a value the compiler remembers.
    let parent_value = unsafe { std::ptr::read_volatile(&value) };
    let parent_addr = &value as *const u64 as u64;
    // ANCHOR_END: copy_parent
    let got_report = report.is_some();
    let [child_value, child_addr, child_ns] = report.unwrap_or_default();
    say!("after the child exited ({status:?}), my value = {parent_value} at address {parent_addr:#x}");
    lab.observe(
        "copy",
        json!({"pid": child.as_raw(), "child_value": child_value, "parent_value": parent_value,
               "child_addr": format!("{child_addr:#x}"), "parent_addr": format!("{parent_addr:#x}"),
               "reported": got_report, "status": format!("{status:?}")}),
        format_args!("at address {parent_addr:#x} the child saw {child_value}, the parent still sees {parent_value}"),
    );
    let (first, lead) = who_first(parent_ns, child_ns);
    lab.observe(
        "first",
        json!({"pid": child.as_raw(), "first": first, "lead_ns": lead, "part": 1}),
        format_args!(
            "this time the {first} ran first after fork (by {}); the scheduler decides, nothing guarantees it",
            fmt_duration(Duration::from_nanos(lead))
        ),
    );
    lab.check(
        "child_write_invisible",
        got_report && child_value == 99 && parent_value == 1 && child_addr == parent_addr,
        "the child's write changed its own copy: same virtual address, different values",
    );

    lab.section(&format!("2. {} children, each with its own fate", args.children));
    let (hello_rx, hello_tx) = pipe().or_die("pipe"); // each child writes (index, start time)

    // Nobody writes into `hold`: a child reading it blocks until it is killed.
    let (hold_rx, hold_tx) = pipe().or_die("pipe");
    // ANCHOR: many
    let mut kids: Vec<(Pid, Fate, u64)> = Vec::new();
    for i in 0..args.children {
        let fate = fate_of(i, args.children);
        flush_stdout();
        // SAFETY: the child runs `live_out` (write, read, raise, close, say!, _exit only).
        match unsafe { fork() }.or_die("fork") {
            ForkResult::Child => {
                send_words(&hello_tx, [i as u64, now_ns()]); // "I am running"
                drop(hello_tx); // close(2) our copy: EOF for the parent once all have run
                live_out(fate, &hold_rx, &hold_tx) // never returns
            }
            ForkResult::Parent { child } => {
                kids.push((child, fate, now_ns()));
                cleanup::track(child); // killed and reaped on every way out
            }
        }
    }
    // ANCHOR_END: many
    drop(hello_tx);
    let mut started = vec![0u64; kids.len()];
    while let Some([i, t]) = read_words::<2>(&hello_rx) {
        if let Some(slot) = started.get_mut(i as usize) {
            *slot = t;
        }
        if started.iter().all(|&t| t > 0) {
            break; // every child has run; the blocked one keeps the pipe open
        }
    }
    // ANCHOR: kill
    for &(pid, fate, _) in &kids {
        if fate == Fate::KilledByParent {
            kill(pid, Signal::SIGTERM).or_die("kill"); // its default action: terminate
            say!("sent SIGTERM to {pid}");
        }
    }
    // ANCHOR_END: kill
    lab.observe(
        "forked",
        json!({"pids": kids.iter().map(|k| k.0.as_raw()).collect::<Vec<_>>()}),
        format_args!("{} children forked; none reaped yet:", kids.len()),
    );
    lab.show_tree(me);
    if args.linger > 0 {
        say!(
            "the children stay unreaped {} ms: try `ps -o pid,ppid,stat,cmd --ppid {me}`",
            args.linger
        );
        std::thread::sleep(Duration::from_millis(args.linger)); // only so a person can look
    }

    // ANCHOR: reap
    let mut ended = Vec::new();
    for _ in 0..kids.len() {
        let status = waitpid(Pid::from_raw(-1), None).or_die("waitpid"); // any child, in order of death
        let (pid, code, signal) = match status {
            WaitStatus::Exited(pid, code) => (pid, Some(code), None), // it called _exit(code)
            WaitStatus::Signaled(pid, sig, _core) => (pid, None, Some(sig)), // a signal killed it
            other => (other.pid().unwrap_or(Pid::from_raw(0)), None, None), // not asked for
        };
        cleanup::forget(pid);
        ended.push((pid, code, signal, status));
    }
    // ANCHOR_END: reap
    let mut rows = Vec::new();
    let mut matched = 0;
    for (pid, code, signal, status) in ended {
        let Some(idx) = kids.iter().position(|k| k.0 == pid) else {
            continue;
        };
        let (_, fate, forked_ns) = kids[idx];
        let (want_code, want_sig) = expected(fate);
        let ok = code == want_code && signal == want_sig;
        let gone = !procfacts::exists(pid.as_raw());
        matched += (ok && gone) as usize;
        let (first, lead) = who_first(forked_ns, started[idx]);
        lab.observe(
            "reaped",
            json!({"pid": pid.as_raw(), "index": idx, "fate": format!("{fate:?}"),
                   "code": code, "signal": signal.map(|s| s.as_str()),
                   "expected_code": want_code, "expected_signal": want_sig.map(|s| s.as_str()),
                   "matches": ok, "gone": gone, "first": first, "lead_ns": lead}),
            format_args!("waitpid(-1) -> {status:?}; child {idx} was given {fate:?}"),
        );
        let decoded = match (code, signal) {
            (Some(c), _) => format!("exited, code {c}"),
            (_, Some(s)) => format!("killed by {}", s.as_str()),
            _ => format!("{status:?}"),
        };
        rows.push(vec![
            idx.to_string(),
            pid.to_string(),
            format!("{fate:?}"),
            decoded,
            if ok { "yes".into() } else { "NO".into() },
            format!("{first} (+{})", fmt_duration(Duration::from_nanos(lead))),
        ]);
    }
    lab.table(
        "reap_table",
        &[
            "child",
            "pid",
            "given fate",
            "waitpid decoded",
            "matches",
            "first after fork",
        ],
        &rows,
    );
    let child_first = lab_count_child_first(&kids, &started);
    lab.observe(
        "first_summary",
        json!({"child_first": child_first, "forks": kids.len()}),
        format_args!(
            "the child ran before the parent resumed in {child_first} of {} forks; it varies from run to run",
            kids.len()
        ),
    );
    let signaled = kids.iter().filter(|k| expected(k.1).1.is_some()).count();
    lab.check(
        "every_status_decoded",
        matched == kids.len(),
        format_args!(
            "{matched} of {} children reaped with the status they were given ({signaled} of them killed by a signal), and gone from /proc",
            kids.len()
        ),
    );
    drop(hold_tx);

    lab.finish()
}

/// How many of the children started running before the parent got back from `fork`.
fn lab_count_child_first(kids: &[(Pid, Fate, u64)], started: &[u64]) -> usize {
    kids.iter()
        .zip(started)
        .filter(|((_, _, forked), &s)| s > 0 && s < *forked)
        .count()
}
