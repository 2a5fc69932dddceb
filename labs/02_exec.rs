//! # exec: same process, new program
//!
//! `execvp` replaces the program a process runs and keeps its pid, its parent and its
//! descriptors without close-on-exec; it returns only if it failed (the child then
//! exits 127). Part 4 times three ways to start a program: fork + exec, `posix_spawn`
//! and `std::process::Command`.
//!
//! Chapter: book/src/02-exec.md

use clap::Parser;
use nix::errno::Errno;
use nix::fcntl::{fcntl, open, FcntlArg, FdFlag, OFlag};
use nix::spawn::{posix_spawn, PosixSpawnAttr, PosixSpawnFileActions};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, getpid, pipe2, read, write, ForkResult, Pid};
use proclab::fdio::read_full_by;
use proclab::measure::{Stopwatch, Summary};
use proclab::wait::waitpid_by;
use proclab::{check, cleanup, flush_stdout, lifeline, observe, procfacts, say};
use proclab::{Common, Deadline, Lab, OrDie, Watchdog};
use std::ffi::{c_char, CString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// exec: the pid stays, the program changes; a failed exec exits 127; close-on-exec.
#[derive(Parser)]
#[command(name = "exec", version)]
struct Args {
    /// How many times each way of starting /bin/true is timed in part 4 (1 to 5000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=5000))]
    rounds: u32,
    /// MiB of memory to touch before part 4 (0 to 4096): fork must copy the page tables
    /// that map it, posix_spawn (vfork-like) does not.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=4096))]
    ballast: u32,
    #[command(flatten)]
    common: Common,
}

fn main() {
    let args = Args::parse();
    let mut lab = Lab::start(
        "exec",
        "exec replaces the program of a process and keeps its pid, parent and the \
         descriptors without close-on-exec; a failed exec returns to the child, which \
         exits 127",
        &args.common,
    );
    replace(&mut lab);
    failure(&mut lab);
    cloexec(&mut lab);
    start_costs(&mut lab, &args);
    lab.finish()
}

/// How long a child may take to exec, fail or end (lab time: `--step` pauses do not
/// count). Each does so in a few milliseconds.
const DEADLINE: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------
// 1. exec keeps the pid and replaces the program
// ---------------------------------------------------------------------------------

fn replace(lab: &mut Lab) {
    lab.section("1. exec keeps the pid and replaces the program");
    let parent = getpid();
    let mut sleep_args = vec![cstr("sleep"), cstr("3600")]; // ended by our SIGTERM
    if proclab::test_removes("same_program") {
        // Tests only: exec this lab's own program again (it exits 2 at once).
        let me = std::env::current_exe().or_die("current_exe");
        sleep_args = vec![cstr(&me.to_string_lossy()), cstr("--no-such-flag")];
    }
    let sleep_argv = argv(&sleep_args);
    // Tests only: write no byte, so the child is never released: it neither execs
    // nor exits.
    let go: &[u8] = if proclab::test_removes("never_exec") { b"" } else { b"g" };
    // ANCHOR: replace
    let (go_rx, go_tx) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // holds the child
    let (err_rx, err_tx) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // exec shuts it
    flush_stdout();
    // SAFETY: the child calls only prctl, read, execvp, write and _exit (glibc's
    // execvp searches PATH without malloc); argv was built before fork.
    let child = match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            lifeline::die_with_parent(parent.as_raw()); // it survives exec
            drop(go_tx); // our copy of the write end: EOF if the parent dies
            let _ = read(&go_rx, &mut [0u8; 1]); // until the parent has looked
            let (program, argv) = (sleep_argv[0], sleep_argv.as_ptr());
            // SAFETY: argv is NULL-terminated, of C strings built before fork.
            unsafe { libc::execvp(program, argv) };
            exec_failed(&err_tx) // execvp returns only if it failed
        }
        ForkResult::Parent { child } => child,
    };
    cleanup::track(child); // killed and reaped on every way out
    drop(err_tx); // only the child holds the write end now
    let pid = child.as_raw();
    let (comm_before, exe_before) = (procfacts::comm(pid), procfacts::exe(pid));
    write(&go_tx, go).or_die("write"); // release the child: it execs now
    let result = exec_result(&err_rx, Deadline::after(DEADLINE));
    // ANCHOR_END: replace
    observe!(
        lab,
        "image",
        "before exec: /proc/{pid}/comm = {comm}, exe = {exe}",
        pid,
        phase = "before",
        comm = comm_before.clone().unwrap_or_default(),
        exe = exe_before.clone().unwrap_or_default()
    );
    let Some(result) = result else {
        let why =
            format!("child {pid} neither exec'd nor exited within {DEADLINE:?}");
        lab.not_observed("pid_kept_image_changed", why);
    };
    // The comm is renamed a moment after the descriptors close: watch it (bounded).
    let comm_after = procfacts::poll_until(DEADLINE, || {
        procfacts::comm(pid).filter(|c| Some(c) != comm_before.as_ref())
    });
    let exe_after = procfacts::exe(pid);
    let ppid_after = procfacts::ppid(pid);
    observe!(
        lab,
        "image",
        "after exec:  /proc/{pid}/comm = {comm}, exe = {exe}, ppid = {ppid} (the lab)",
        pid,
        phase = "after",
        comm = comm_after.clone().unwrap_or_default(),
        exe = exe_after.clone().unwrap_or_default(),
        ppid = ppid_after.unwrap_or(0),
        exec_error = result.err().map(|e| format!("{e:?}"))
    );
    lab.show_tree(parent);
    // ANCHOR: sigterm
    // The new program obeys signals like any other, and is still our child.
    kill(child, Signal::SIGTERM).or_die("kill");
    let status = waitpid_by(child, Deadline::after(DEADLINE));
    // ANCHOR_END: sigterm
    let Some(status) = status else {
        let why = format!("child {pid} still ran {DEADLINE:?} after SIGTERM");
        lab.not_observed("pid_kept_image_changed", why);
    };
    cleanup::forget(child);
    observe!(lab, "sleep_reaped", "waitpid({pid}): {status}", pid, status);
    check!(
        lab,
        "pid_kept_image_changed",
        result.is_ok()
            && comm_after.as_deref() == Some("sleep")
            && exe_after.is_some()
            && exe_before != exe_after
            && ppid_after == Some(parent.as_raw())
            && status.signal() == Some(Signal::SIGTERM),
        "pid {pid} ran this lab, then sleep: same pid and parent, new comm and exe"
    );
}

// ---------------------------------------------------------------------------------
// 2. A failed exec returns; the child reports it and exits 127
// ---------------------------------------------------------------------------------

fn failure(lab: &mut Lab) {
    lab.section("2. A failed exec returns; the child reports it and exits 127");
    let parent = getpid().as_raw();
    // Tests only: a program that exists, so the exec does not fail.
    let program = if proclab::test_removes("program_exists") {
        "true"
    } else {
        "proclab-no-such-program"
    };
    let missing_args = [cstr(program)];
    let missing_argv = argv(&missing_args);
    // ANCHOR: fail
    let (err_rx, err_tx) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2");
    flush_stdout();
    // SAFETY: the child only calls prctl, execvp, write and _exit.
    let child = match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            lifeline::die_with_parent(parent);
            // SAFETY: argv is NULL-terminated, of C strings built before fork.
            unsafe { libc::execvp(missing_argv[0], missing_argv.as_ptr()) };
            say!("execvp failed; reporting errno to my parent and exiting 127");
            exec_failed(&err_tx)
        }
        ForkResult::Parent { child } => child,
    };
    cleanup::track(child);
    drop(err_tx);
    let by = Deadline::after(DEADLINE);
    let result = exec_result(&err_rx, by); // 4 bytes: the child's errno
    let status = waitpid_by(child, by);
    // ANCHOR_END: fail
    let (Some(result), Some(status)) = (result, status) else {
        let why = format!("child {child} did not end within {DEADLINE:?}");
        lab.not_observed("exec_failure_127", why);
    };
    cleanup::forget(child);
    let errno = result.err();
    observe!(
        lab,
        "exec_failure",
        "the child sent back {errno_text}; waitpid: {status}",
        pid = child.as_raw(),
        errno = errno.map(|e| format!("{e:?}")),
        errno_text =
            result.err().map_or("nothing".into(), proclab::wait::errno_text),
        status
    );
    check!(
        lab,
        "exec_failure_127",
        errno == Some(Errno::ENOENT) && status.code() == Some(127),
        "execvp of a missing program returned ENOENT in the child, which exited 127"
    );
}

// ---------------------------------------------------------------------------------
// 3. Close-on-exec: which descriptors cross exec
// ---------------------------------------------------------------------------------

fn cloexec(lab: &mut Lab) {
    lab.section("3. Close-on-exec: which descriptors cross exec");
    let parent = getpid().as_raw();
    let std_file = std::fs::File::open("/dev/null").or_die("open");
    let flags = fcntl(&std_file, FcntlArg::F_GETFD).or_die("fcntl");
    observe!(
        lab,
        "std_cloexec",
        "a file opened with Rust's std::fs::File::open (fd {fd}) has FD_CLOEXEC = \
         {cloexec}",
        fd = std_file.as_raw_fd(),
        cloexec = FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC)
    );
    drop(std_file);
    let ls_args = [cstr("ls"), cstr("-l"), cstr("/proc/self/fd")];
    let ls_argv = argv(&ls_args);
    // ANCHOR: cloexec
    let kept = open("/dev/null", OFlag::O_RDONLY, Mode::empty()).or_die("open");
    let cloexec = OFlag::O_RDONLY | OFlag::O_CLOEXEC; // closed by exec
    let shut = open("/dev/zero", cloexec, Mode::empty()).or_die("open");
    // ANCHOR_END: cloexec
    if proclab::test_removes("no_cloexec") {
        // Tests only: clear the flag, so /dev/zero crosses the exec too.
        fcntl(&shut, FcntlArg::F_SETFD(FdFlag::empty())).or_die("fcntl");
    }
    // ANCHOR: cloexec_child
    let (out_rx, out_tx) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2"); // ls's stdout
    let (err_rx, err_tx) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2");
    flush_stdout();
    // SAFETY: the child only calls prctl, dup2, execvp, write and _exit.
    let child = match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            lifeline::die_with_parent(parent);
            // SAFETY: dup2 of an open descriptor onto stdout (the copy has no
            // CLOEXEC); argv is NULL-terminated, built before fork.
            unsafe {
                libc::dup2(out_tx.as_raw_fd(), 1);
                libc::execvp(ls_argv[0], ls_argv.as_ptr()); // ls lists its own fds
            }
            exec_failed(&err_tx)
        }
        ForkResult::Parent { child } => child,
    };
    cleanup::track(child);
    drop((out_tx, err_tx));
    let by = Deadline::after(DEADLINE);
    let mut buf = vec![0u8; 64 * 1024];
    let listing = read_full_by(&out_rx, &mut buf, by); // until ls exits
    let result = exec_result(&err_rx, by);
    let status = waitpid_by(child, by);
    // ANCHOR_END: cloexec_child
    let (Ok(len), Some(result), Some(status)) = (listing, result, status) else {
        let why = format!("ls (child {child}) did not end within {DEADLINE:?}");
        lab.not_observed("cloexec_respected", why);
    };
    cleanup::forget(child);
    let listing = String::from_utf8_lossy(&buf[..len]).trim_end().to_string();
    let fds = parse_fd_listing(&listing);
    let (kept_fd, shut_fd) = (kept.as_raw_fd(), shut.as_raw_fd());
    let kept_seen = fds.iter().any(|(fd, t)| *fd == kept_fd && t == "/dev/null");
    let shut_seen = fds.iter().any(|(_, t)| t == "/dev/zero");
    let own_dir = format!("/proc/{child}/fd");
    let pid_in_listing = fds.iter().any(|(_, t)| *t == own_dir);
    drop((kept, shut));
    let fds: Vec<_> = fds.iter().map(|(fd, t)| Fd { fd: *fd, target: t }).collect();
    observe!(
        lab,
        "fd_listing",
        "`ls -l /proc/self/fd` run by child {pid} after exec ({status}):\n{listing}",
        pid = child.as_raw(),
        fds,
        status,
        exec_error = result.err().map(|e| format!("{e:?}"))
    );
    observe!(
        lab,
        "fd_summary",
        "fd {kept_fd} (/dev/null, no O_CLOEXEC) crossed exec: {kept_seen}; fd {shut_fd} \
         (/dev/zero, O_CLOEXEC) crossed: {shut_seen}; ls's own directory fd is \
         {own_dir}: {pid_in_listing}",
        kept_fd,
        kept_seen,
        shut_fd,
        shut_seen,
        own_dir,
        pid_in_listing
    );
    check!(
        lab,
        "cloexec_respected",
        result.is_ok()
            && status.code() == Some(0)
            && kept_seen
            && !shut_seen
            && pid_in_listing,
        "the exec'd program (same pid) still had the plain descriptor, and not the \
         close-on-exec one"
    );
}

/// One line of the listing, as a fact.
#[derive(serde::Serialize)]
struct Fd<'a> {
    fd: i32,
    target: &'a str,
}

// ---------------------------------------------------------------------------------
// 4. Starting /bin/true three ways
// ---------------------------------------------------------------------------------

fn start_costs(lab: &mut Lab, args: &Args) {
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

// ---------------------------------------------------------------------------------
// Plumbing: argv for execvp, and the close-on-exec pipe that reports a failed exec
// ---------------------------------------------------------------------------------

/// A NULL-terminated argv for execvp, built before fork (the child must not allocate).
fn argv(args: &[CString]) -> Vec<*const c_char> {
    args.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect()
}

/// A C string from text without NUL bytes.
fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

/// In the child: exec failed; send errno through `err` and leave with 127, as a shell
/// does. Async-signal-safe.
fn exec_failed(err: &OwnedFd) -> ! {
    let errno = Errno::last_raw();
    let _ = proclab::fdio::write_all(err, &errno.to_ne_bytes());
    // SAFETY: _exit leaves at once, without running the parent's destructors.
    unsafe { libc::_exit(127) }
}

/// What a child's close-on-exec pipe said by `by`: `Ok` if it closed without a word
/// (the exec succeeded, or the child ended), the errno the child sent if the exec
/// failed, None if the child neither exec'd nor ended in time.
fn exec_result(err_rx: &OwnedFd, by: Deadline) -> Option<Result<(), Errno>> {
    let mut buf = [0u8; 4];
    match read_full_by(err_rx, &mut buf, by) {
        Err(Errno::ETIMEDOUT) => None,
        Ok(4) => Some(Err(Errno::from_raw(i32::from_ne_bytes(buf)))),
        _ => Some(Ok(())),
    }
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

#[cfg(test)]
mod tests {
    #[test]
    fn an_fd_listing_gives_each_descriptor_and_its_target() {
        let text = "total 0\n\
            lr-x------ 1 root root 64 Nov 22 18:04 0 -> /dev/null\n\
            l-wx------ 1 root root 64 Nov 22 18:04 1 -> pipe:[9477379]\n\
            lr-x------ 1 root root 64 Nov 22 18:04 3 -> /proc/16325/fd\n";
        let fds = super::parse_fd_listing(text);
        assert_eq!(fds.len(), 3, "the `total` line is not a descriptor");
        assert_eq!(fds[0], (0, "/dev/null".to_string()));
        assert_eq!(fds[1], (1, "pipe:[9477379]".to_string()));
        assert_eq!(fds[2], (3, "/proc/16325/fd".to_string()));
    }
}
