//! # zombie: a child that has exited but has not been waited for
//!
//! The child exits at once; the parent does not call `waitpid`. The kernel keeps the child's
//! entry (its pid and exit status) so the parent can still collect it: `/proc/PID/stat` shows
//! state `Z` and `ps` shows `<defunct>`. The lab then shows that SIGKILL cannot remove a
//! zombie (it is already dead), that `waitpid` removes it, and that with SIGCHLD set to
//! SIG_IGN the kernel reaps children itself, so no zombie ever appears.
//!
//! What to look for: the `Z` in the tree and in ps's STAT column while the zombies linger
//! (`--linger MS`, default 1000); the pid gone from /proc after `waitpid`; `waitpid` failing
//! with ECHILD once SIGCHLD is ignored.
//!
//! Caveats: the zombie exists until its parent reaps it or dies; if the parent dies, the
//! zombie is re-parented to PID 1 or a subreaper, which is expected to reap it. In a
//! container PID 1 may not be an init that reaps.

use clap::Parser;
use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, getpid, ForkResult, Pid};
use proclab::procfacts::{self, state_name};
use proclab::{cleanup, flush_stdout, say, Common, Lab, OrDie};
use serde_json::json;
use std::time::Duration;

/// A zombie: an exited child, kept in the process table until its parent waits for it.
#[derive(Parser)]
#[command(name = "zombie", version)]
struct Args {
    /// How many zombies to make at once (each holds a pid until reaped).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    count: u32,
    /// How long the zombies stay unreaped, in ms, so `ps` run by hand can see them too.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    linger: u64,
    #[command(flatten)]
    common: Common,
}

fn main() {
    let args = Args::parse();
    let mut lab = Lab::start("zombie", &args.common);
    let me = getpid();

    lab.section("1. Children exit; the parent does not wait");
    // ANCHOR: make
    let mut kids: Vec<(Pid, i32)> = Vec::new();
    for i in 0..args.count as i32 {
        let status = 7 + i;
        flush_stdout(); // or text still buffered would be printed by the child too
                        // SAFETY: the child only calls say! (one write(2)) and _exit, both async-signal-safe.
        match unsafe { fork() }.or_die("fork") {
            ForkResult::Child => {
                say!("exiting with status {status}");
                unsafe { libc::_exit(status) } // leave at once; no waitpid in the parent yet
            }
            ForkResult::Parent { child } => {
                cleanup::track(child); // killed and reaped on every way out
                kids.push((child, status));
            }
        }
    }
    // ANCHOR_END: make

    // ANCHOR: observe
    let mut zombies = 0;
    for &(pid, _) in &kids {
        // A child's exit cannot be announced without reaping it, so watch /proc (bounded).
        let seen = procfacts::wait_for_state(pid.as_raw(), &['Z'], Duration::from_secs(5));
        let state = seen.or_else(|| procfacts::state(pid.as_raw())).unwrap_or('?');
        let ppid = procfacts::ppid(pid.as_raw()).unwrap_or(0);
        lab.observe(
            "state",
            json!({"pid": pid.as_raw(), "state": state.to_string(), "ppid": ppid, "phase": "unreaped"}),
            format_args!("/proc/{pid}/stat says {} with ppid {ppid}", state_name(state)),
        );
        zombies += (state == 'Z') as usize;
    }
    // ANCHOR_END: observe
    lab.show_tree(me);
    lab.check(
        "zombie_seen",
        zombies == kids.len(),
        format_args!(
            "{zombies} of {} exited children are zombies (state Z) while unreaped",
            kids.len()
        ),
    );

    if let Ok(out) = std::process::Command::new("ps")
        .args(["-o", "pid,ppid,stat,cmd", "--ppid", &me.to_string()])
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        let defunct = text.lines().filter(|l| l.contains("<defunct>")).count();
        lab.observe(
            "ps",
            json!({"defunct": defunct, "output": text.trim_end()}),
            format_args!("ps agrees: {defunct} <defunct> lines\n{}", text.trim_end()),
        );
    }
    say!(
        "the zombies linger {} ms: try `ps -o pid,ppid,stat,cmd --ppid {me}` in another terminal",
        args.linger
    );
    std::thread::sleep(Duration::from_millis(args.linger)); // only so a person can look

    lab.section("2. SIGKILL does not remove a zombie");
    // ANCHOR: sigkill
    let (victim, _) = kids[0];
    kill(victim, Signal::SIGKILL).or_die("kill"); // succeeds: the pid still exists
    std::thread::sleep(Duration::from_millis(100)); // give a signal time to act, if it could
    let after = procfacts::state(victim.as_raw()).unwrap_or('?');
    // ANCHOR_END: sigkill
    lab.observe(
        "state",
        json!({"pid": victim.as_raw(), "state": after.to_string(), "phase": "after_sigkill"}),
        format_args!(
            "kill({victim}, SIGKILL) returned 0; 100 ms later /proc/{victim}/stat still says {}",
            state_name(after)
        ),
    );
    lab.check(
        "sigkill_no_effect",
        after == 'Z',
        "SIGKILL leaves a zombie in place: it is already dead, only waitpid removes it",
    );

    lab.section("3. waitpid reaps the zombies");
    // ANCHOR: reap
    let mut reaped_ok = 0;
    for &(pid, given) in &kids {
        let status = waitpid(pid, None).or_die("waitpid"); // collects the exit status, frees the pid
        cleanup::forget(pid);
        let gone = !procfacts::exists(pid.as_raw());
        let code = match status {
            WaitStatus::Exited(_, code) => Some(code),
            _ => None,
        };
        lab.observe(
            "reaped",
            json!({"pid": pid.as_raw(), "status": format!("{status:?}"), "code": code, "expected": given, "gone": gone}),
            format_args!("waitpid({pid}) -> {status:?}; /proc/{pid} {}", if gone { "is gone" } else { "still exists" }),
        );
        reaped_ok += (code == Some(given) && gone) as usize;
    }
    // ANCHOR_END: reap
    lab.check(
        "reaped_gone",
        reaped_ok == kids.len(),
        format_args!(
            "{reaped_ok} of {} zombies reaped with the status they exited with, and gone from /proc",
            kids.len()
        ),
    );

    lab.section("4. SIGCHLD ignored: the kernel reaps at once, no zombie");
    // ANCHOR: sig_ign
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_IGN installs no handler code.
    let old = unsafe { sigaction(Signal::SIGCHLD, &ignore) }.or_die("sigaction");
    flush_stdout();
    // SAFETY: the child only calls _exit.
    let child = match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => unsafe { libc::_exit(0) },
        ForkResult::Parent { child } => child,
    };
    cleanup::track(child);
    let mut states = String::new();
    procfacts::poll_until(Duration::from_secs(5), || match procfacts::state(child.as_raw()) {
        Some(s) => {
            if !states.ends_with(s) {
                states.push(s); // every distinct state the child was seen in
            }
            None
        }
        None => Some(()), // the pid is gone from /proc
    });
    let wait = waitpid(child, None); // no status is kept: ECHILD
                                     // SAFETY: restores the previous disposition.
    unsafe { sigaction(Signal::SIGCHLD, &old) }.or_die("sigaction");
    // ANCHOR_END: sig_ign
    cleanup::forget(child);
    let gone = !procfacts::exists(child.as_raw());
    lab.observe(
        "sig_ign",
        json!({"pid": child.as_raw(), "states_seen": states, "gone": gone, "waitpid": format!("{wait:?}")}),
        format_args!("child {child} was seen in states [{states}], then vanished from /proc; waitpid -> {wait:?}"),
    );
    lab.check(
        "no_zombie_with_sig_ign",
        !states.contains('Z') && gone && wait == Err(nix::errno::Errno::ECHILD),
        "with SIGCHLD ignored the child never showed state Z and no exit status was kept (ECHILD)",
    );

    lab.finish("an exited child stays in the process table as a zombie (Z) until its parent reaps it with waitpid; SIGKILL cannot remove it; with SIGCHLD ignored the kernel reaps it at once")
}
