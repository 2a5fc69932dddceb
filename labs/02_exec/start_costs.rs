//! Part 4: three ways to start /bin/true, timed: fork + execve, posix_spawn and
//! std::process::Command. Chapter: book/src/02-exec.md

use crate::exec_pipe::{argv, cstr};
use crate::{Args, DEADLINE};
use nix::spawn::{posix_spawn, PosixSpawnAttr, PosixSpawnFileActions};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use proclab::measure::{Stopwatch, Summary};
use proclab::{check, cleanup, flush_stdout, observe, say};
use proclab::{Lab, OrDie, Watchdog};
use std::ffi::{c_char, CString};
use std::time::Duration;

pub fn run(lab: &mut Lab, args: &Args) {
    let rounds = args.rounds;
    lab.section(&format!(
        "4. Starting /bin/true: fork+exec, posix_spawn, Command ({rounds} rounds each)"
    ));
    let ballast = vec![1u8; args.ballast as usize * 1024 * 1024]; // every page touched
    if args.ballast > 0 {
        say!(
            "touched {} MiB of ballast: fork has that much more to map",
            args.ballast
        );
    }
    let true_path = if std::path::Path::new("/bin/true").exists() {
        "/bin/true"
    } else {
        "/usr/bin/true"
    };
    let true_args = [cstr(true_path)];
    let true_argv = argv(&true_args);
    let no_env: [*const c_char; 1] = [std::ptr::null()];
    let actions =
        PosixSpawnFileActions::init().or_die("posix_spawn_file_actions_init");
    let attr = PosixSpawnAttr::init().or_die("posix_spawnattr_init");
    let empty_env: [CString; 0] = [];
    // /bin/true ends at once; if one ever did not, the watchdog kills it and the
    // check below fails instead of the lab hanging.
    let bound = DEADLINE + Duration::from_millis(100) * rounds;
    let watchdog = Watchdog::arm(bound, || {
        for pid in cleanup::tracked() {
            let _ = kill(pid, Signal::SIGKILL);
        }
    });
    let (mut t_fork, mut t_spawn, mut t_cmd) = (Vec::new(), Vec::new(), Vec::new());
    let mut ok_runs = 0;
    for _ in 0..rounds {
        // ANCHOR: timing
        let sw = Stopwatch::start(); // fork + execve + waitpid
        flush_stdout();
        // SAFETY: the child only calls execve and _exit. (No lifeline: /bin/true
        // ends by itself, and nothing is added to what is timed.)
        let child = match unsafe { fork() }.or_die("fork") {
            ForkResult::Child => {
                // SAFETY: argv and envp are NULL-terminated, built before fork.
                unsafe {
                    libc::execve(true_argv[0], true_argv.as_ptr(), no_env.as_ptr());
                    libc::_exit(127)
                }
            }
            ForkResult::Parent { child } => child,
        };
        cleanup::track(child);
        let a = waitpid(child, None).or_die("waitpid");
        cleanup::forget(child);
        t_fork.push(sw.elapsed());
        // ANCHOR_END: timing

        // ANCHOR: timing_others
        let sw = Stopwatch::start(); // posix_spawn + waitpid
        let path = true_args[0].as_c_str();
        let child = posix_spawn(path, &actions, &attr, &true_args, &empty_env)
            .or_die("posix_spawn");
        cleanup::track(child);
        let b = waitpid(child, None).or_die("waitpid");
        cleanup::forget(child);
        t_spawn.push(sw.elapsed());

        let sw = Stopwatch::start(); // std::process::Command: spawn + wait
        let mut c = std::process::Command::new(true_path)
            .env_clear()
            .spawn()
            .or_die("Command::spawn");
        let c_pid = Pid::from_raw(c.id() as i32);
        cleanup::track(c_pid);
        let c = c.wait().or_die("Child::wait");
        cleanup::forget(c_pid);
        t_cmd.push(sw.elapsed());
        // ANCHOR_END: timing_others
        ok_runs += matches!(a, WaitStatus::Exited(_, 0)) as u32
            + matches!(b, WaitStatus::Exited(_, 0)) as u32
            + c.success() as u32;
    }
    let fired = watchdog.disarm();
    drop(ballast);
    for (method, samples) in [
        ("fork + execve + waitpid", &t_fork),
        ("posix_spawn + waitpid", &t_spawn),
        ("std::process::Command", &t_cmd),
    ] {
        let s = Summary::of(samples);
        observe!(
            lab,
            "start_cost",
            "{method}: {s}",
            method,
            n = s.n,
            min_ns = s.min.as_nanos() as u64,
            median_ns = s.median.as_nanos() as u64,
            p99_ns = s.p99.as_nanos() as u64
        );
    }
    let runs = 3 * rounds;
    check!(
        lab,
        "all_started",
        ok_runs == runs && !fired,
        "{ok_runs} of {runs} runs of /bin/true, by all three ways, exited 0",
        ok_runs,
        runs,
        watchdog_fired = fired
    );
}
