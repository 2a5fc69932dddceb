//! Part 5: the lab's own minimal init, doing tini's job as PID 1: it spawns the
//! program, forwards signals to it, reaps every child (adopted orphans too) and exits
//! with the program's status. Chapter: book/src/14-pid1.md

use crate::ns;
use crate::trial::{self, Init, Trial};
use crate::{privileges::Ctx, Args};
use nix::sys::signal::{kill, SigSet, SigmaskHow::SIG_BLOCK, Signal};
use nix::sys::wait::WaitStatus::{Exited, Signaled, StillAlive};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::{fork, ForkResult, Pid};
use proclab::_exit;
use proclab::{check, observe, Lab};
use std::ffi::c_char;
use std::ptr::null_mut;

/// What a test may take out of the init, one thing at a time (never in normal use).
#[derive(Clone, Copy, Default)]
pub struct Switches {
    pub no_forward: bool,
    pub no_reap: bool,
    pub status_zero: bool,
}

/// A NULL-terminated argv or envp, built before clone.
type Argv = [*const c_char];

/// The signals the init collects: all but those a fault of its own raises
/// (SIGSEGV...), which are left to act on the init itself, as tini leaves them.
fn collected() -> SigSet {
    use Signal::{SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGSYS, SIGTRAP};
    let mut wanted = SigSet::all();
    for fault in [SIGFPE, SIGILL, SIGSEGV, SIGBUS, SIGABRT, SIGTRAP, SIGSYS] {
        wanted.remove(fault);
    }
    wanted
}

// ANCHOR: init
/// PID 1 of the namespace: spawn the program, forward every signal to it, reap
/// every child, exit with the program's status. After clone: async-signal-safe.
pub fn minimal_init(argv: &Argv, envp: &Argv, sw: Switches) -> ! {
    // Blocked, a signal waits for sigtimedwait: the kernel keeps it even for
    // PID 1, which has no handler.
    let wanted = collected();
    let before = wanted.thread_swap_mask(SIG_BLOCK).unwrap_or(wanted);
    let program = spawn(argv, envp, &before); // with the mask it had before
    let second = libc::timespec { tv_sec: 1, tv_nsec: 0 };
    let set: &libc::sigset_t = wanted.as_ref();
    loop {
        // SAFETY: a valid set and timeout; sigtimedwait is async-signal-safe.
        let sig = unsafe { libc::sigtimedwait(set, null_mut(), &second) };
        if let Ok(sig) = Signal::try_from(sig) {
            if sig != Signal::SIGCHLD && !sw.no_forward {
                let _ = kill(program, sig); // not PID 1: the program obeys
            }
        }
        reap(program, sw); // after every signal, and at least once a second
    }
}
// ANCHOR_END: init

/// Fork the program with the signal mask it would have had, then exec it.
fn spawn(argv: &Argv, envp: &Argv, mask: &SigSet) -> Pid {
    // SAFETY: the child calls only sigprocmask, execve and _exit.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => unsafe {
            let _ = mask.thread_set_mask();
            libc::execve(argv[0], argv.as_ptr(), envp.as_ptr());
            libc::_exit(127)
        },
        Ok(ForkResult::Parent { child }) => child,
        Err(_) => _exit(1),
    }
}

// ANCHOR: reap
/// Reap every child that has ended; when the program is among them, leave with
/// its status: its exit code, or 128 + the signal that killed it (PID 1 cannot
/// die of that signal itself, as part 2 showed).
fn reap(program: Pid, sw: Switches) {
    let any = if sw.no_reap { program } else { Pid::from_raw(-1) };
    loop {
        let code = match waitpid(any, Some(WaitPidFlag::WNOHANG)) {
            Ok(Exited(pid, code)) if pid == program => code,
            Ok(Signaled(pid, sig, _)) if pid == program => 128 + sig as i32,
            Ok(StillAlive) | Err(_) => return, // none has ended, or none left
            Ok(_) => continue, // an adopted orphan: reaped, nothing more to do
        };
        let code = if sw.status_zero { 0 } else { code };
        // _exit is async-signal-safe. The kernel then kills whatever is
        // left in the namespace.
        _exit(code)
    }
}
// ANCHOR_END: reap

pub fn run(lab: &mut Lab, ctx: &Ctx, args: &Args) -> Trial {
    lab.section("5. A minimal init: spawn, forward, reap, pass the status");
    let sw = Switches {
        no_forward: proclab::test_removes("init_no_forward"),
        no_reap: proclab::test_removes("init_no_reap"),
        status_zero: proclab::test_removes("init_status_zero"),
    };
    let t = trial::run(ctx, &Init::Ours(sw), args.orphans);
    let (adopted, zombies, sigterm, exit7) =
        (&t.adopted, t.zombies, t.sigterm, t.exit7);
    let n = args.orphans as usize;
    // pid: PID 1 as the lab sees it; ns_ppids: the orphans' getppid() inside.
    observe!(
        lab,
        "init_trial",
        "under the lab's init (PID 1 is {pid} outside): {n} orphans adopted by PID \
         {shown}, {zombies} zombies left; after {sent} to PID 1 it {status}; when \
         the program exits 7, PID 1 ({exit7_pid}) {exit7}",
        init = "proclab",
        pid = t.pid,
        forked = true,
        n,
        ns_ppids = adopted,
        shown = ns::words(adopted),
        zombies,
        sent = "SIGTERM",
        status = sigterm,
        exit7_pid = t.exit7_pid,
        exit7
    );
    let ones = adopted.len() == n && adopted.iter().all(|&p| p == 1);
    check!(lab, "init_reaps_orphans", ones && zombies == 0,
        "the init adopted the program's {n} orphans and reaped them: no zombie left");
    check!(
        lab,
        "init_forwards_sigterm",
        sigterm.code() == Some(128 + 15),
        "SIGTERM to PID 1 reached the program, which died of it; the init exited \
         128 + 15 = 143, as a shell reports a death by SIGTERM"
    );
    check!(
        lab,
        "init_passes_status",
        exit7.code() == Some(7),
        "the program's exit status 7 came out of PID 1 unchanged"
    );
    t
}
