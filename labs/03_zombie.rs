//! # zombie: a child that has exited but has not been waited for
//!
//! The children exit at once and the parent does not wait: each stays in the process
//! table in state `Z` until `waitpid` collects its status. SIGKILL cannot remove it;
//! with SIGCHLD set to SIG_IGN the kernel reaps at once and no zombie appears.
//!
//! Chapter: book/src/03-zombie.md

use clap::Parser;
use nix::errno::Errno;
use nix::sys::signal::{
    kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal,
};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, getpid, ForkResult, Pid};
use proclab::_exit;
use proclab::procfacts::{self, State};
use proclab::wait::reap_or_kill;
use proclab::{
    check, cleanup, flush_stdout, lifeline, observe, say, Common, Deadline, Lab,
    OrDie, Status,
};
use std::time::Duration;

/// A zombie: an exited child, kept in the process table until its parent waits for it.
#[derive(Parser)]
#[command(name = "zombie", version)]
struct Args {
    /// How many zombies to make at once (1 to 100).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    count: u32,
    /// How long the zombies stay unreaped, in ms (0 to 60000), to look at them with ps.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    linger_ms: u64,
    #[command(flatten)]
    common: Common,
}

fn main() {
    let args = Args::parse();
    let mut lab = Lab::start(
        "zombie",
        "an exited child stays in the process table as a zombie (Z) until its parent \
         reaps it with waitpid; SIGKILL cannot remove it; with SIGCHLD ignored the kernel \
         reaps it at once",
        &args.common,
    );
    let me = getpid();
    let reap_first = proclab::test_removes("reap_first"); // tests only: no zombie is left
    let linger = proclab::test_removes("children_linger"); // tests only: they do not exit

    lab.section("1. Children exit; the parent does not wait");
    // ANCHOR: make
    let mut kids: Vec<(Pid, i32)> = Vec::new();
    for i in 0..args.count as i32 {
        let status = 7 + i;
        // Flush first, or the child prints the parent's buffered text again.
        flush_stdout();
        // SAFETY: the child calls only prctl, getppid, sleep, say! and _exit.
        match unsafe { fork() }.or_die("fork") {
            ForkResult::Child => {
                lifeline::die_with_parent(me.as_raw());
                if linger {
                    nix::unistd::sleep(60); // async-signal-safe
                }
                say!("exiting with status {status}");
                _exit(status) // and the parent does not wait
            }
            ForkResult::Parent { child } => {
                cleanup::track(child); // killed and reaped on every way out
                kids.push((child, status));
            }
        }
    }
    // ANCHOR_END: make
    let pids: Vec<i32> = kids.iter().map(|(pid, _)| pid.as_raw()).collect();
    observe!(lab, "forked", "forked {n} children {pids:?}", n = pids.len(), pids);
    if reap_first {
        for &(pid, _) in &kids {
            let _ = waitpid(pid, None);
            cleanup::forget(pid);
        }
    }

    // ANCHOR: observe
    let mut before = Vec::new(); // each child's state while unreaped
    let by = Deadline::after(Duration::from_secs(5));
    for &(pid, _) in &kids {
        // No wait can announce a zombie without reaping it: watch /proc (bounded).
        let seen = procfacts::wait_for_state(pid.as_raw(), &['Z'], by.remaining());
        let state = State(seen.unwrap_or(State::of(pid.as_raw()).0));
        let ppid = procfacts::ppid(pid.as_raw()).unwrap_or(0);
        observe!(
            lab,
            "state",
            "/proc/{pid}/stat says {state}, ppid {ppid}",
            pid = pid.as_raw(),
            state,
            ppid,
            phase = "unreaped"
        );
        before.push(state);
    }
    // ANCHOR_END: observe
    let zombies = before.iter().filter(|s| s.0 == 'Z').count();
    lab.show_tree(me);
    let n = kids.len();
    check!(
        lab,
        "zombie_seen",
        zombies == n,
        "{zombies} of {n} exited children are zombies (state Z) while unreaped",
        zombies,
        n
    );
    if let Ok(out) = std::process::Command::new("ps")
        .args(["-o", "pid,ppid,stat,cmd", "--ppid", &me.to_string()])
        .output()
    {
        let output = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
        let defunct = output.lines().filter(|l| l.contains("<defunct>")).count();
        observe!(
            lab,
            "ps",
            "ps agrees: {defunct} <defunct> lines\n{output}",
            defunct,
            output
        );
    }
    if !lab.stepping() && args.linger_ms > 0 {
        let ms = args.linger_ms;
        say!("the zombies linger {ms} ms: look with ps now (or use --step)");
        std::thread::sleep(Duration::from_millis(ms)); // only so a person can look
    }

    lab.section("2. SIGKILL does not remove a zombie");
    // ANCHOR: sigkill
    let (victim, _) = kids[0];
    if let Err(e) = kill(victim, Signal::SIGKILL) {
        // ESRCH: no such process, so there was no zombie to kill.
        lab.not_observed(
            "sigkill_no_effect",
            format_args!("kill({victim}) failed: {e}"),
        );
    }
    // Give a signal time to act, if it could.
    std::thread::sleep(Duration::from_millis(100));
    let state = State::of(victim.as_raw());
    // ANCHOR_END: sigkill
    observe!(
        lab,
        "state",
        "kill({pid}, SIGKILL) returned 0; 100 ms later it is {state}",
        pid = victim.as_raw(),
        sent = "SIGKILL",
        state,
        phase = "after_sigkill"
    );
    // A live child that SIGKILL killed is a zombie now too: it must have been one before.
    let was = before[0];
    check!(lab, "sigkill_no_effect", was.0 == 'Z' && state.0 == 'Z',
        "before SIGKILL the child was {was}, after it {state}: a zombie is already \
         dead, only waitpid removes it", was, state);

    lab.section("3. waitpid reaps the zombies");
    // ANCHOR: reap
    let mut reaped_ok = 0;
    let by = Deadline::after(Duration::from_secs(2));
    for &(pid, expected) in &kids {
        // A zombie's status is ready at once; a child still running at the
        // deadline is killed (SIGKILL) and reaped, and does not count.
        let (status, in_time) = reap_or_kill(pid, by.remaining());
        let gone = !procfacts::exists(pid.as_raw());
        observe!(
            lab,
            "reaped",
            "waitpid({pid}): {status}; /proc/{pid} gone: {gone}",
            pid = pid.as_raw(),
            status,
            code = status.code(),
            expected,
            in_time,
            gone
        );
        reaped_ok += (status.code() == Some(expected) && in_time && gone) as usize;
    }
    // ANCHOR_END: reap
    check!(lab, "reaped_gone", reaped_ok == n,
        "{reaped_ok} of {n} zombies reaped with the status they exited with, and gone",
        reaped_ok, n);

    lab.section("4. SIGCHLD ignored: the kernel reaps at once, no zombie");
    // ANCHOR: sig_ign
    let ignore =
        SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_IGN installs no handler code.
    let old = unsafe { sigaction(Signal::SIGCHLD, &ignore) }.or_die("sigaction");
    flush_stdout();
    // SAFETY: the child only calls _exit.
    let child = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => _exit(0),
        ForkResult::Parent { child } => child,
    };
    let mut states_seen = String::new();
    let pid = child.as_raw();
    procfacts::poll_until(Duration::from_secs(5), || match procfacts::state(pid) {
        None => Some(()), // gone from /proc
        Some(s) => {
            if !states_seen.ends_with(s) {
                states_seen.push(s); // every distinct state the child was seen in
            }
            None
        }
    });
    // No status was kept, so waitpid fails with ECHILD.
    let wait = Status(waitpid(child, None));
    // ANCHOR_END: sig_ign
    // SAFETY: restores the previous disposition.
    unsafe { sigaction(Signal::SIGCHLD, &old) }.or_die("sigaction");
    cleanup::forget(child);
    let gone = !procfacts::exists(child.as_raw());
    observe!(
        lab,
        "sig_ign",
        "child {pid} was seen in [{states_seen}], then was gone; {wait}",
        pid = child.as_raw(),
        forked = true,
        states_seen,
        gone,
        wait
    );
    check!(lab, "no_zombie_with_sig_ign",
        !states_seen.contains('Z') && gone && wait.0 == Err(Errno::ECHILD),
        "with SIGCHLD ignored the child never showed state Z and no status was kept");

    lab.finish()
}
