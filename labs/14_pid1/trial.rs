//! Plumbing of parts 5 and 6: the same program, run under an init (or as PID 1 itself)
//! in a new PID namespace, twice. First it leaves orphans, the lab counts the zombies
//! they leave and sends SIGTERM to PID 1; then it exits with status 7 by itself, and
//! the lab reads what PID 1 exits with.

use crate::app::{ALIVE, ORPHAN, PING};
use crate::init::{self, Switches};
use crate::ns::{self, Child, Ended, Ends};
use crate::orphans::zombies_below;
use crate::privileges::Ctx;
use crate::program::{CMD_FD, EXIT, READY, REPORT_FD};
use nix::sys::signal::{kill, Signal};
use proclab::procfacts;
use std::ffi::{c_char, CString};
use std::time::Duration;

/// What runs as PID 1.
pub enum Init {
    /// The program itself.
    None,
    /// The lab's own minimal init (part 5).
    Ours(Switches),
    /// An installed init: its path and its arguments before the program's.
    Tool(String, &'static [&'static str]),
}

/// What a trial saw.
pub struct Trial {
    /// PID 1 of the first run (the orphans, then SIGTERM), in the lab's namespace.
    pub pid: i32,
    /// PID 1 of the second run (the program exits 7), in the lab's namespace.
    pub exit7_pid: i32,
    /// Each orphan's getppid() once its parent had exited (inside the namespace).
    pub adopted: Vec<i64>,
    /// Zombies left below PID 1 1 s after the last orphan exited.
    pub zombies: usize,
    /// How PID 1 ended within 3 s of SIGTERM (not waited for when the program was
    /// PID 1 itself: then `answered` says whether it still answered a ping).
    pub sigterm: Ended,
    pub answered: bool,
    /// How PID 1 ended when the program exited with status 7 by itself.
    pub exit7: Ended,
}

/// NULL-terminated pointers to `args` (for execve; built before clone).
fn pointers(args: &[CString]) -> Vec<*const c_char> {
    args.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect()
}

/// In the child after clone: the report and command pipes become fds 3 and 4, which
/// exec keeps (by way of fds above 10, so that neither overwrites the other).
fn onto_3_and_4(ends: &Ends) {
    // SAFETY: fcntl and dup2 are async-signal-safe; the fds are the child's own.
    unsafe {
        let report = libc::fcntl(ends.report, libc::F_DUPFD_CLOEXEC, 10);
        let cmd = libc::fcntl(ends.cmd, libc::F_DUPFD_CLOEXEC, 10);
        libc::dup2(report, REPORT_FD);
        libc::dup2(cmd, CMD_FD);
    }
}

/// Start PID 1 of a new namespace: the init with the program under it, or the program.
fn launch(ctx: &Ctx, init: &Init, orphans: u32) -> Child {
    let text = |s: &str| CString::new(s).unwrap_or_default();
    let n = orphans.to_string();
    let program: Vec<CString> = [ctx.exe.clone()]
        .into_iter()
        .chain(["--role", "program", "--program-orphans", &n].map(text))
        .collect();
    let argv: Vec<CString> = match init {
        Init::Tool(path, args) => [text(path)]
            .into_iter()
            .chain(args.iter().map(|a| text(a)))
            .chain(program.clone())
            .collect(),
        _ => program.clone(),
    };
    let (argv, program, envp) =
        (pointers(&argv), pointers(&program), pointers(&ctx.env));
    ns::spawn(ctx, ctx.newpid, |ends| {
        onto_3_and_4(ends);
        if let Init::Ours(switches) = init {
            init::minimal_init(&program, &envp, *switches)
        }
        // SAFETY: argv and envp are NULL-terminated arrays built before clone.
        unsafe {
            libc::execve(argv[0], argv.as_ptr(), envp.as_ptr());
            libc::_exit(127)
        }
    })
}

/// Wait until every orphan of `inside` has exited (they do right after reporting),
/// then up to 1 s for PID 1 to reap them; the zombies left.
fn settle(pid1: &Child, inside: &[i64]) -> usize {
    let alive = || {
        procfacts::tree(pid1.pid.as_raw()).iter().skip(1).any(|r| {
            r.state != 'Z'
                && ns::inner_pid(r.pid).is_some_and(|p| inside.contains(&p))
        })
    };
    procfacts::poll_until(Duration::from_secs(2), || (!alive()).then_some(()));
    let none = || (zombies_below(pid1.pid) == 0).then_some(());
    procfacts::poll_until(Duration::from_millis(1000), none);
    zombies_below(pid1.pid)
}

/// Run the program under `init` twice, as described above.
pub fn run(ctx: &Ctx, init: &Init, orphans: u32) -> Trial {
    let mut pid1 = launch(ctx, init, orphans);
    let pid = pid1.pid.as_raw();
    let (mut ready, mut inside, mut adopted) = (false, Vec::new(), Vec::new());
    while !ready || adopted.len() < orphans as usize {
        match pid1.next(10_000) {
            Some([READY, ..]) => ready = true,
            Some([ORPHAN, pid, ppid, _]) => {
                inside.push(pid);
                adopted.push(ppid);
            }
            _ => break, // the deadline, or every writer gone
        }
    }
    let zombies = settle(&pid1, &inside);
    let _ = kill(pid1.pid, Signal::SIGTERM); // from outside, as `docker stop` does
    let (sigterm, answered) = match init {
        // Dropped by kill() itself when PID 1 has no handler: a ping tells.
        Init::None => {
            let answered =
                pid1.tell(PING, 0) && matches!(pid1.next(5000), Some([ALIVE, ..]));
            (Ended(None), answered)
        }
        _ => (pid1.wait_ms(3000), false),
    };
    pid1.end();
    let mut pid1 = launch(ctx, init, 0);
    let exit7_pid = pid1.pid.as_raw();
    let exit7 = match pid1.next(10_000) {
        Some([READY, ..]) if pid1.tell(EXIT, 7) => pid1.wait_ms(3000),
        _ => Ended(None),
    };
    pid1.end();
    Trial { pid, exit7_pid, adopted, zombies, sigterm, answered, exit7 }
}
