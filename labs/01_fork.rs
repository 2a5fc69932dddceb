//! # fork: one process becomes two
//!
//! `fork()` copies the calling process and returns twice: 0 in the child, the child's
//! pid in the parent. Part 1: the child's writes change its own copy of memory. Part 2:
//! children meet different fates (an exit code, a signal) and the parent reads each
//! one's from the status `waitpid` returns.
//!
//! Chapter: book/src/01-fork.md

use clap::Parser;
use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};
use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet};
use nix::sys::signal::{raise, Signal};
use nix::sys::wait::WaitStatus;
use nix::unistd::{fork, getpid, pipe, read, ForkResult, Pid};
use proclab::clock::now_ns;
use proclab::fdio::{read_full_by, write_all};
use proclab::wait::waitpid_by;
use proclab::{check, cleanup, flush_stdout, lifeline, observe, procfacts, say};
use proclab::{Common, Deadline, Lab, OrDie, Status};
use std::fmt;
use std::num::NonZeroUsize;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// fork: the child's memory is a copy; waitpid returns each child's exit code or signal.
#[derive(Parser)]
#[command(name = "fork", version)]
struct Args {
    /// How many children to fork in part 2, each with its own fate (1 to 64).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    children: u32,
    /// How long the children stay unreaped, in ms (0 to 60000), to look at them with ps.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    linger_ms: u64,
    #[command(flatten)]
    common: Common,
}

/// How long a child may take to report and to end (lab time: `--step` pauses do not
/// count). Every child here does so in microseconds.
const DEADLINE: Duration = Duration::from_secs(5);

fn main() {
    let args = Args::parse();
    let mut lab = Lab::start(
        "fork",
        "fork gives the child a copy of the parent's memory (its writes stay its own); \
         the parent reaps every child with waitpid and reads from the status how it \
         ended: exit code or killing signal",
        &args.common,
    );
    copy(&mut lab);
    fates(&mut lab, &args);
    lab.finish()
}

// ---------------------------------------------------------------------------------
// 1. The child's memory is a copy
// ---------------------------------------------------------------------------------

fn copy(lab: &mut Lab) {
    lab.section("1. The child's memory is a copy");
    let parent = getpid().as_raw();
    let mut on_stack: u64 = 1;
    // Tests only: a MAP_SHARED page, which fork shares instead of copying.
    let value: &mut u64 = if proclab::test_removes("shared_page") {
        shared_word(1)
    } else {
        &mut on_stack
    };
    // ANCHOR: copy
    // The child reports through a pipe. Flush first, or the child prints the
    // parent's buffered text again.
    let (rx, tx) = pipe().or_die("pipe");
    flush_stdout();
    // SAFETY: the child writes its own memory, then calls say!, write and _exit.
    let child = match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            let started = now_ns();
            lifeline::die_with_parent(parent); // SIGKILL if the lab dies
            *value = 99; // changes the child's copy only
            let addr = &raw const *value as u64;
            say!("I set value = {} at address {addr:#x}", *value);
            send(&tx, [*value, addr, started]);
            // SAFETY: _exit leaves at once, without the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => child,
    };
    // ANCHOR_END: copy
    let parent_ns = now_ns();
    // ANCHOR: copy_parent
    cleanup::track(child); // killed and reaped on every way out
    drop(tx); // only the child holds a write end now
    let by = Deadline::after(DEADLINE);
    let report = recv::<3>(&rx, by); // what the child saw, where, and when
    let status = waitpid_by(child, by);
    // SAFETY: a read of our own live variable, volatile so that it really
    // comes from memory, not from what the compiler remembers writing.
    let parent_value = unsafe { std::ptr::read_volatile(value) };
    let parent_addr = &raw const *value as u64;
    // ANCHOR_END: copy_parent
    if status.is_some() {
        cleanup::forget(child);
    }
    let (Some([child_value, child_addr, child_ns]), Some(status)) =
        (report, status)
    else {
        let pid = child.as_raw();
        let why =
            format!("child {pid} did not report and exit within {DEADLINE:?}");
        lab.not_observed("child_write_invisible", why);
    };
    observe!(
        lab,
        "copy",
        "at address {parent_addr} the child saw {child_value}, the parent still \
         sees {parent_value}; the child {status}",
        pid = child.as_raw(),
        child_value,
        parent_value,
        child_addr = format!("{child_addr:#x}"),
        parent_addr = format!("{parent_addr:#x}"),
        status
    );
    let (first, lead_us) = who_first(parent_ns, child_ns);
    observe!(
        lab,
        "first",
        "this time the {first} ran first after fork (by {lead_us} µs); the \
         scheduler decides, nothing guarantees it",
        pid = child.as_raw(),
        first,
        lead_us
    );
    check!(
        lab,
        "child_write_invisible",
        child_value == 99 && parent_value == 1 && child_addr == parent_addr,
        "the child's write changed its own copy: same virtual address, different \
         values"
    );
}

/// Tests only: a word in a new MAP_SHARED page, which parent and child share.
fn shared_word(v: u64) -> &'static mut u64 {
    const PAGE: NonZeroUsize = NonZeroUsize::new(4096).unwrap();
    let prot = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
    // SAFETY: a new anonymous mapping, never unmapped: the reference stays valid.
    let page = unsafe { mmap_anonymous(None, PAGE, prot, MapFlags::MAP_SHARED) }
        .or_die("mmap");
    // SAFETY: the page is zeroed, aligned and ours alone until fork.
    let word = unsafe { &mut *page.as_ptr().cast::<u64>() };
    *word = v;
    word
}

/// ("parent", µs) if the parent got back from fork first, ("child", µs) if the child
/// started first (both from the one monotonic clock).
fn who_first(parent_ns: u64, child_ns: u64) -> (&'static str, u64) {
    if child_ns < parent_ns {
        ("child", (parent_ns - child_ns) / 1000)
    } else {
        ("parent", (child_ns - parent_ns) / 1000)
    }
}

// ---------------------------------------------------------------------------------
// 2. N children, each with its own fate
// ---------------------------------------------------------------------------------

/// How a child of part 2 ends.
#[derive(Clone, Copy, PartialEq)]
enum Fate {
    /// `_exit(code)`.
    Exit(i32),
    /// `raise(SIGKILL)`: the child kills itself.
    RaiseSigkill,
    /// The child blocks; the parent sends it SIGTERM.
    KilledByParent,
}

impl Fate {
    /// Child `i` of `n`: the last is killed by the parent, every fourth raises
    /// SIGKILL, the others exit with their own code (10 + i).
    fn of(i: u32, n: u32) -> Fate {
        if i + 1 == n {
            Fate::KilledByParent
        } else if i % 4 == 2 {
            Fate::RaiseSigkill
        } else {
            Fate::Exit(10 + i as i32)
        }
    }

    /// What `waitpid` should say of child `pid` given this fate.
    fn expected(self, pid: Pid) -> Status {
        Status::from(match self {
            Fate::Exit(code) => WaitStatus::Exited(pid, code),
            Fate::RaiseSigkill => WaitStatus::Signaled(pid, Signal::SIGKILL, false),
            Fate::KilledByParent => {
                WaitStatus::Signaled(pid, Signal::SIGTERM, false)
            }
        })
    }
}

impl fmt::Display for Fate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fate::Exit(code) => write!(f, "_exit({code})"),
            Fate::RaiseSigkill => f.write_str("raise(SIGKILL)"),
            Fate::KilledByParent => f.write_str("SIGTERM from the parent"),
        }
    }
}

// ANCHOR: fates
/// In a child of part 2: meet the fate it was given. Async-signal-safe.
fn live_out(fate: Fate, hold_rx: &OwnedFd, hold_tx: &OwnedFd) -> ! {
    match fate {
        Fate::Exit(code) => say!("exiting with status {code}"),
        Fate::RaiseSigkill => {
            say!("raising SIGKILL on myself");
            let _ = raise(Signal::SIGKILL); // dies here: no exit code
        }
        Fate::KilledByParent => {
            say!("blocking in read(2) until my parent kills me");
            // SAFETY: closes this child's copy of the write end (EOF if the
            // parent dies), which this process does not use again.
            unsafe { libc::close(hold_tx.as_raw_fd()) };
            let _ = read(hold_rx, &mut [0u8; 1]); // SIGTERM arrives here
        }
    }
    let code = if let Fate::Exit(code) = fate { code } else { 1 };
    // SAFETY: _exit leaves at once, without running the parent's destructors.
    unsafe { libc::_exit(code) }
}
// ANCHOR_END: fates

fn fates(lab: &mut Lab, args: &Args) {
    lab.section(&format!("2. {} children, each with its own fate", args.children));
    let parent = getpid();
    if proclab::test_removes("sigchld_ignored") {
        // Tests only: the kernel reaps the children itself and keeps no status.
        let ign =
            SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        // SAFETY: SIG_IGN installs no handler code.
        unsafe { sigaction(Signal::SIGCHLD, &ign) }.or_die("sigaction");
    }
    // Each child writes (index, start time) into `hello`. Nobody writes into
    // `hold`: a child reading it blocks until it is killed.
    let (hello_rx, hello_tx) = pipe().or_die("pipe");
    let (hold_rx, hold_tx) = pipe().or_die("pipe");
    // ANCHOR: many
    let mut kids: Vec<(Pid, Fate, u64)> = Vec::new();
    for i in 0..args.children {
        let fate = Fate::of(i, args.children);
        flush_stdout();
        // SAFETY: the child runs live_out (write, read, raise, close, _exit).
        match unsafe { fork() }.or_die("fork") {
            ForkResult::Child => {
                lifeline::die_with_parent(parent.as_raw());
                send(&hello_tx, [i as u64, now_ns()]); // "I am running"
                drop(hello_tx); // our copy: EOF for the parent once all have run
                live_out(fate, &hold_rx, &hold_tx)
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
    let by = Deadline::after(DEADLINE);
    while started.contains(&0) {
        // None at end of file or at the deadline: a missing start time is reported.
        let Some([i, t]) = recv::<2>(&hello_rx, by) else { break };
        if let Some(slot) = started.get_mut(i as usize) {
            *slot = t;
        }
    }
    if !proclab::test_removes("no_sigterm") {
        // (tests only: without SIGTERM the blocked child never ends)
        // ANCHOR: kill
        for &(pid, fate, _) in &kids {
            if fate == Fate::KilledByParent {
                kill(pid, Signal::SIGTERM).or_die("kill"); // default action: end
                say!("sent SIGTERM to {pid}");
            }
        }
        // ANCHOR_END: kill
    }
    let pids: Vec<i32> = kids.iter().map(|k| k.0.as_raw()).collect();
    let n = kids.len();
    observe!(lab, "forked", "{n} children forked; none reaped yet:", pids, n);
    lab.show_tree(parent);
    if !lab.stepping() && args.linger_ms > 0 {
        let ms = args.linger_ms;
        say!(
            "the children stay unreaped {ms} ms: look with ps now (or use --step)"
        );
        std::thread::sleep(Duration::from_millis(ms)); // only so a person can look
    }

    // ANCHOR: reap
    let by = Deadline::after(DEADLINE);
    let mut ended = Vec::new();
    for _ in 0..n {
        // Any child (-1), in the order they died; its status says how it ended.
        let Some(status) = waitpid_by(Pid::from_raw(-1), by) else {
            let why = format!("a child was still running after {DEADLINE:?}");
            lab.not_observed("every_status_decoded", why);
        };
        let Some(pid) = status.0.ok().and_then(|s| s.pid()) else {
            no_status_kept(lab, &kids, status); // ECHILD
        };
        cleanup::forget(pid);
        ended.push((pid, status));
    }
    // ANCHOR_END: reap
    let mut matched = 0;
    for (pid, status) in ended {
        let Some(index) = kids.iter().position(|k| k.0 == pid) else {
            continue;
        };
        let (_, fate, forked_ns) = kids[index];
        let expected = fate.expected(pid);
        let (first, lead_us) = who_first(forked_ns, started[index]);
        let gone = !procfacts::exists(pid.as_raw());
        observe!(
            lab,
            "reaped",
            "waitpid(-1): {pid} {status}; child {index} was given {fate}; the \
             {first} ran first after fork (by {lead_us} µs)",
            pid = pid.as_raw(),
            index,
            fate = fate.to_string(),
            status,
            expected,
            matches = status == expected,
            gone,
            first,
            lead_us
        );
        matched += (status == expected && gone) as usize;
    }
    let child_first = kids
        .iter()
        .zip(&started)
        .filter(|((_, _, forked), &s)| s > 0 && s < *forked)
        .count();
    observe!(
        lab,
        "first_summary",
        "the child ran before the parent resumed in {child_first} of {n} forks; it \
         varies from run to run",
        child_first,
        forks = n
    );
    let signaled =
        kids.iter().filter(|k| k.1.expected(k.0).signal().is_some()).count();
    check!(
        lab,
        "every_status_decoded",
        matched == n,
        "{matched} of {n} children reaped with the status they were given \
         ({signaled} of them killed by a signal), and gone from /proc",
        matched,
        n,
        signaled
    );
    drop(hold_tx);
}

/// waitpid(-1) failed (ECHILD): the kernel kept no status, as when SIGCHLD is
/// ignored (a disposition that exec inherits). The children are gone: forget them.
fn no_status_kept(lab: &mut Lab, kids: &[(Pid, Fate, u64)], status: Status) -> ! {
    kids.iter().for_each(|k| cleanup::forget(k.0));
    let why = format!("{status}: the kernel kept no status (SIGCHLD ignored?)");
    lab.not_observed("every_status_decoded", why)
}

// ---------------------------------------------------------------------------------
// Plumbing: fixed-size messages of u64 words through a pipe
// ---------------------------------------------------------------------------------

/// Write `N` (at most 3) words in one write(2) of at most 24 bytes, under PIPE_BUF:
/// never interleaved with another child's. Async-signal-safe.
fn send<const N: usize>(fd: &OwnedFd, words: [u64; N]) {
    let mut buf = [0u8; 24];
    for (i, w) in words.iter().enumerate() {
        buf[i * 8..i * 8 + 8].copy_from_slice(&w.to_ne_bytes());
    }
    let _ = write_all(fd, &buf[..N * 8]);
}

/// Read `N` words written by [`send`]; None at end of file or at the deadline.
fn recv<const N: usize>(fd: &OwnedFd, by: Deadline) -> Option<[u64; N]> {
    let mut buf = [0u8; 24];
    let n = read_full_by(fd, &mut buf[..N * 8], by).ok()?;
    (n == N * 8).then(|| {
        std::array::from_fn(|i| {
            u64::from_ne_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap_or_default())
        })
    })
}
