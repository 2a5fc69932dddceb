//! # exec: same process, new program
//!
//! `execvp` replaces the program a process runs: new code, new memory, new `comm` and
//! `/proc/PID/exe`, but the same pid, the same parent and (unless marked close-on-exec) the
//! same open descriptors. It returns only if it failed. The lab forks a child that waits on a
//! pipe, looks at `/proc/CHILD` before and after the child execs `sleep`, makes an exec fail
//! (the child reports the errno and exits 127, as shells do), proves with `ls -l
//! /proc/self/fd` run in the child which descriptors crossed the exec, and times three ways
//! to start a program: fork+exec, `posix_spawn` and `std::process::Command`.
//!
//! What to look for: the pid before and after is the same, `comm`/`exe` change from this lab
//! to `sleep`; `Exited(pid, 127)` after the failed exec, with the errno the child sent back;
//! the descriptor opened without `O_CLOEXEC` in the exec'd program's listing, the one with it
//! absent; the median costs.
//!
//! Caveats: timings on a shared machine are noisy; compare medians from one run. After fork
//! the child only calls async-signal-safe functions, so every argv is built before forking.

use clap::Parser;
use nix::errno::Errno;
use nix::fcntl::{fcntl, open, FcntlArg, FdFlag, OFlag};
use nix::spawn::{posix_spawn, PosixSpawnAttr, PosixSpawnFileActions};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, getpid, pipe2, read, write, ForkResult};
use proclab::measure::{fmt_duration, Stopwatch, Summary};
use proclab::{cleanup, flush_stdout, procfacts, say, Common, Lab, OrDie};
use serde_json::json;
use std::ffi::{c_char, CString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// exec: the pid stays, the program changes; exec failure is exit 127; close-on-exec
/// descriptors do not cross exec; fork+exec vs posix_spawn vs Command, timed.
#[derive(Parser)]
#[command(name = "exec", version)]
struct Args {
    /// How many times each way of starting /bin/true is timed in part 4.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=5000))]
    rounds: u32,
    /// Touch this many MiB of memory before part 4: fork must copy the page tables that map
    /// it, posix_spawn (vfork-like) does not.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=4096))]
    ballast: u32,
    #[command(flatten)]
    common: Common,
}

/// A NULL-terminated argv for execvp, built before fork (the child must not allocate).
fn argv(args: &[CString]) -> Vec<*const c_char> {
    args.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect()
}

/// A C string from a literal without NUL bytes.
fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

/// Read from `fd` until EOF.
fn read_to_end(fd: &OwnedFd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match read(fd, &mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR) => continue,
            Err(e) => proclab::die("read", e),
        }
    }
}

/// In the child: exec failed; send errno through `err` and leave with 127, as a shell does.
/// Async-signal-safe.
fn exec_failed(err: &OwnedFd) -> ! {
    let errno = Errno::last_raw();
    let _ = write(err, &errno.to_ne_bytes());
    // SAFETY: _exit leaves at once, without running the parent's destructors.
    unsafe { libc::_exit(127) }
}

/// The errno a child sent back through its close-on-exec pipe, or None if the pipe just
/// closed: the exec succeeded.
fn exec_result(err_rx: &OwnedFd) -> Option<Errno> {
    let bytes = read_to_end(err_rx);
    (bytes.len() >= 4).then(|| {
        Errno::from_raw(i32::from_ne_bytes([
            bytes[0], bytes[1], bytes[2], bytes[3],
        ]))
    })
}

/// (fd, target) pairs from `ls -l /proc/self/fd` lines like `... 4 -> /dev/null`.
fn parse_fd_listing(text: &str) -> Vec<(i32, String)> {
    text.lines()
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ")?;
            let fd = left.split_whitespace().last()?.parse().ok()?;
            Some((fd, target.trim().to_string()))
        })
        .collect()
}

fn main() {
    let args = Args::parse();
    let mut lab = Lab::start(
        "exec",
        "exec replaces the program of a process and keeps its pid, parent and the descriptors without close-on-exec; a failed exec returns to the child, which exits 127",
        &args.common,
    );
    let me = getpid();

    lab.section("1. exec keeps the pid and replaces the program");
    let sleep_args = [cstr("sleep"), cstr("10")]; // bounded: ends by itself if we vanish
    let sleep_argv = argv(&sleep_args);
    // ANCHOR: replace
    let (go_rx, go_tx) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // holds the child before exec
    let (err_rx, err_tx) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // closed by a successful exec
    flush_stdout();
    // SAFETY: the child only calls read, execvp, write and _exit (glibc's execvp searches PATH
    // without malloc); argv was built before fork.
    let child = match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            drop(go_tx); // our copy of the write end: EOF if the parent dies
            let _ = read(&go_rx, &mut [0u8; 1]); // wait until the parent has looked at us
                                                 // SAFETY: argv is a NULL-terminated array of live C strings built before fork.
            unsafe { libc::execvp(sleep_argv[0], sleep_argv.as_ptr()) }; // returns only on failure
            exec_failed(&err_tx)
        }
        ForkResult::Parent { child } => child,
    };
    cleanup::track(child); // killed and reaped on every way out
    drop(err_tx); // only the child holds the write end now
    let pid = child.as_raw();
    let (comm_before, exe_before) = (procfacts::comm(pid), procfacts::exe(pid)); // still this lab
    write(&go_tx, b"g").or_die("write"); // release the child: it execs now
    let failed = exec_result(&err_rx); // EOF: exec closed the pipe, the new program runs

    // ANCHOR_END: replace
    lab.observe(
        "image",
        json!({"pid": pid, "phase": "before", "comm": comm_before, "exe": exe_before}),
        format_args!(
            "before exec: /proc/{pid}/comm = {}, exe = {}",
            comm_before.as_deref().unwrap_or("?"),
            exe_before.as_deref().unwrap_or("?")
        ),
    );
    // The comm is renamed a moment after the descriptors close: watch it (bounded).
    let comm_after = procfacts::poll_until(Duration::from_secs(3), || {
        procfacts::comm(pid).filter(|c| Some(c) != comm_before.as_ref())
    });
    let exe_after = procfacts::exe(pid);
    let ppid_after = procfacts::ppid(pid);
    lab.observe(
        "image",
        json!({"pid": pid, "phase": "after", "comm": comm_after, "exe": exe_after,
               "ppid": ppid_after, "exec_error": failed.map(|e| e.desc())}),
        format_args!(
            "after exec:  /proc/{pid}/comm = {}, exe = {}, ppid = {} (still this lab)",
            comm_after.as_deref().unwrap_or("?"),
            exe_after.as_deref().unwrap_or("?"),
            ppid_after.unwrap_or(0)
        ),
    );
    lab.show_tree(me);
    kill(child, Signal::SIGTERM).or_die("kill"); // the new program obeys signals like any other
    let status = waitpid(child, None).or_die("waitpid"); // and it is still our child
    cleanup::forget(child);
    lab.observe(
        "sleep_reaped",
        json!({"pid": pid, "status": format!("{status:?}")}),
        format_args!("waitpid({pid}) -> {status:?}"),
    );
    lab.check(
        "pid_kept_image_changed",
        failed.is_none()
            && comm_after.as_deref() == Some("sleep")
            && exe_after.is_some()
            && exe_before != exe_after
            && ppid_after == Some(me.as_raw())
            && status == WaitStatus::Signaled(child, Signal::SIGTERM, false),
        format_args!("pid {pid} ran this lab, then sleep: same pid and parent, new comm and exe"),
    );

    lab.section("2. A failed exec returns; the child reports it and exits 127");
    let missing_args = [cstr("proclab-no-such-program")];
    let missing_argv = argv(&missing_args);
    // ANCHOR: fail
    let (err_rx, err_tx) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2");
    flush_stdout();
    // SAFETY: the child only calls execvp, write and _exit.
    let child = match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            // SAFETY: argv is a NULL-terminated array of live C strings built before fork.
            unsafe { libc::execvp(missing_argv[0], missing_argv.as_ptr()) }; // fails: ENOENT
            say!("execvp failed; reporting errno to my parent and exiting 127");
            exec_failed(&err_tx)
        }
        ForkResult::Parent { child } => child,
    };
    cleanup::track(child);
    drop(err_tx);
    let errno = exec_result(&err_rx); // 4 bytes: the child's errno
    let status = waitpid(child, None).or_die("waitpid");
    cleanup::forget(child);
    // ANCHOR_END: fail
    lab.observe(
        "exec_failure",
        json!({"pid": child.as_raw(), "errno": errno.map(|e| e as i32), "errno_name": errno.map(|e| format!("{e:?}")),
               "code": if let WaitStatus::Exited(_, c) = status { Some(c) } else { None },
               "status": format!("{status:?}")}),
        format_args!(
            "the child sent back {} ({}); waitpid -> {status:?}",
            errno.map(|e| format!("{e:?}")).unwrap_or_else(|| "nothing".into()),
            errno.map(|e| e.desc()).unwrap_or("-")
        ),
    );
    lab.check(
        "exec_failure_127",
        errno == Some(Errno::ENOENT) && status == WaitStatus::Exited(child, 127),
        "execvp of a missing program returned ENOENT in the child, which exited 127",
    );

    lab.section("3. Close-on-exec: which descriptors cross exec");
    let std_file = std::fs::File::open("/dev/null").or_die("open");
    let std_flags = fcntl(&std_file, FcntlArg::F_GETFD).or_die("fcntl");
    let std_cloexec =
        FdFlag::from_bits_truncate(std_flags).contains(FdFlag::FD_CLOEXEC);
    lab.observe(
        "std_cloexec",
        json!({"fd": std_file.as_raw_fd(), "cloexec": std_cloexec}),
        format_args!(
            "a file opened with Rust's std::fs::File::open (fd {}) has FD_CLOEXEC = {std_cloexec}",
            std_file.as_raw_fd()
        ),
    );
    drop(std_file);
    let ls_args = [cstr("ls"), cstr("-l"), cstr("/proc/self/fd")];
    let ls_argv = argv(&ls_args);
    // ANCHOR: cloexec
    let kept = open("/dev/null", OFlag::O_RDONLY, Mode::empty()).or_die("open"); // inherited by exec
    let shut = open("/dev/zero", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .or_die("open"); // closed by exec
    let (out_rx, out_tx) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // the program's stdout
    let (err_rx, err_tx) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2");
    flush_stdout();
    // SAFETY: the child only calls dup2, execvp, write and _exit.
    let child = match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            // SAFETY: dup2 on two open descriptors; argv is NULL-terminated, built before fork.
            unsafe {
                libc::dup2(out_tx.as_raw_fd(), 1); // stdout -> pipe (dup2 clears CLOEXEC)
                libc::execvp(ls_argv[0], ls_argv.as_ptr()); // ls lists its own descriptors
            }
            exec_failed(&err_tx)
        }
        ForkResult::Parent { child } => child,
    };
    cleanup::track(child);
    drop((out_tx, err_tx));
    let listing = String::from_utf8_lossy(&read_to_end(&out_rx)).into_owned(); // until ls exits
    let failed = exec_result(&err_rx);
    let status = waitpid(child, None).or_die("waitpid");
    cleanup::forget(child);
    // ANCHOR_END: cloexec
    let fds = parse_fd_listing(&listing);
    let (kept_fd, shut_fd) = (kept.as_raw_fd(), shut.as_raw_fd());
    let kept_seen = fds.iter().any(|(fd, t)| *fd == kept_fd && t == "/dev/null");
    let shut_seen = fds.iter().any(|(fd, t)| *fd == shut_fd && t == "/dev/zero")
        || fds.iter().any(|(_, t)| t == "/dev/zero");
    let own_dir = format!("/proc/{}/fd", child.as_raw());
    let pid_in_listing = fds.iter().any(|(_, t)| *t == own_dir);
    drop((kept, shut));
    lab.observe(
        "fd_listing",
        json!({"pid": child.as_raw(), "fds": fds.iter().map(|(fd, t)| json!({"fd": fd, "target": t})).collect::<Vec<_>>(),
               "kept_fd": kept_fd, "shut_fd": shut_fd, "kept_seen": kept_seen, "shut_seen": shut_seen,
               "pid_in_listing": pid_in_listing, "status": format!("{status:?}"),
               "exec_error": failed.map(|e| e.desc())}),
        format_args!(
            "`ls -l /proc/self/fd` run by child {} after exec ({status:?}):\n{}",
            child,
            listing.trim_end()
        ),
    );
    lab.observe(
        "fd_summary",
        json!({"kept_fd": kept_fd, "kept_seen": kept_seen, "shut_fd": shut_fd, "shut_seen": shut_seen}),
        format_args!(
            "fd {kept_fd} (/dev/null, no O_CLOEXEC) is {}; fd {shut_fd} (/dev/zero, O_CLOEXEC) is {}; ls's own directory fd is {own_dir}",
            if kept_seen { "there" } else { "MISSING" },
            if shut_seen { "STILL THERE" } else { "gone" }
        ),
    );
    lab.check(
        "cloexec_respected",
        failed.is_none() && status == WaitStatus::Exited(child, 0) && kept_seen && !shut_seen && pid_in_listing,
        "the exec'd program (same pid) still had the plain descriptor, and not the close-on-exec one",
    );

    lab.section(&format!(
        "4. Starting /bin/true: fork+exec, posix_spawn, Command ({} rounds each)",
        args.rounds
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
    let (mut t_fork, mut t_spawn, mut t_cmd) = (Vec::new(), Vec::new(), Vec::new());
    let mut ok_runs = 0;
    for _ in 0..args.rounds {
        // ANCHOR: timing
        let sw = Stopwatch::start(); // fork + execve + waitpid
        flush_stdout();
        // SAFETY: the child only calls execve and _exit.
        let child = match unsafe { fork() }.or_die("fork") {
            ForkResult::Child => {
                // SAFETY: argv and envp are NULL-terminated arrays built before fork.
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
        let child = posix_spawn(
            true_args[0].as_c_str(),
            &actions,
            &attr,
            &true_args,
            &empty_env,
        )
        .or_die("posix_spawn");
        cleanup::track(child);
        let b = waitpid(child, None).or_die("waitpid");
        cleanup::forget(child);
        t_spawn.push(sw.elapsed());

        let sw = Stopwatch::start(); // std::process::Command: spawn + wait
        let c = std::process::Command::new(true_path)
            .env_clear()
            .status()
            .or_die("Command::status");
        t_cmd.push(sw.elapsed());
        // ANCHOR_END: timing_others
        ok_runs += matches!(a, WaitStatus::Exited(_, 0)) as u32
            + matches!(b, WaitStatus::Exited(_, 0)) as u32
            + c.success() as u32;
    }
    drop(ballast);
    let mut rows = Vec::new();
    for (name, samples) in [
        ("fork + execve + waitpid", &t_fork),
        ("posix_spawn + waitpid", &t_spawn),
        ("std::process::Command::status", &t_cmd),
    ] {
        let s = Summary::of(samples);
        rows.push(vec![
            name.to_string(),
            fmt_duration(s.min),
            fmt_duration(s.median),
            fmt_duration(s.p99),
        ]);
        lab.observe(
            "start_cost",
            json!({"method": name, "n": s.n, "min_ns": s.min.as_nanos() as u64,
                   "median_ns": s.median.as_nanos() as u64, "p99_ns": s.p99.as_nanos() as u64}),
            format_args!("{name}: {s}"),
        );
    }
    lab.table(
        "start_costs",
        &["way to run /bin/true", "min", "median", "p99"],
        &rows,
    );
    lab.check(
        "all_started",
        ok_runs == 3 * args.rounds,
        format_args!(
            "{ok_runs} of {} runs of /bin/true, by all three ways, exited 0",
            3 * args.rounds
        ),
    );

    lab.finish()
}
