//! Nothing leaks: children are killed and reaped and shared-memory names unlinked on every
//! way out of a lab: normal end ([`Guard`]'s drop and `Lab::finish`), an error
//! ([`crate::die`]), a panic (the hook installed by [`install`]), SIGINT and SIGTERM (a signal
//! handler).
//!
//! The registry is a fixed table of atomics, so the signal handler can read it without a
//! lock or the heap. Record a child with [`track`] right after `fork`, and [`forget`] it once
//! it has been reaped (so that a reused pid is never killed). Named segments likewise:
//! [`track_shm`] after `shm_open`, [`forget_shm`] after `shm_unlink`; and directories that
//! must go once the children are gone (a cgroup): [`track_dir`] after `mkdir`,
//! [`forget_dir`] after `rmdir`. Each name and directory has a janitor that removes it
//! after a SIGKILL of the lab (`src/janitor.rs`).

use crate::_exit;
use crate::janitor::Job;
use crate::narrate;
use std::ffi::{CStr, CString};
use std::ptr;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicUsize, Ordering,
};

const PID_SLOTS: usize = 1024;

static PIDS: [AtomicI32; PID_SLOTS] = [const { AtomicI32::new(0) }; PID_SLOTS];
/// Names in /dev/shm, unlinked on every way out.
static SHM: Names<64> = Names::new(Job::Unlink);
/// Directories (cgroups), removed on every way out once the children are reaped.
static DIRS: Names<8> = Names::new(Job::Rmdir);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The `interrupted` verdict lines (JSON) for SIGINT and SIGTERM, rendered before any
/// signal can arrive so that the handler only has to write(2) them.
const LINE_MAX: usize = 256;
static INT_LINE: [AtomicU8; LINE_MAX] = [const { AtomicU8::new(0) }; LINE_MAX];
static INT_LEN: AtomicUsize = AtomicUsize::new(0);
static TERM_LINE: [AtomicU8; LINE_MAX] = [const { AtomicU8::new(0) }; LINE_MAX];
static TERM_LEN: AtomicUsize = AtomicUsize::new(0);

/// The line the SIGINT or SIGTERM handler writes on stdout after cleaning up (the lab's
/// `--json` verdict for that way out). Longer lines are not kept.
pub fn set_interrupted_line(sig: libc::c_int, line: &[u8]) {
    let (buf, len) = if sig == libc::SIGINT {
        (&INT_LINE, &INT_LEN)
    } else {
        (&TERM_LINE, &TERM_LEN)
    };
    if line.len() > LINE_MAX {
        return;
    }
    for (slot, b) in buf.iter().zip(line) {
        slot.store(*b, Ordering::SeqCst);
    }
    len.store(line.len(), Ordering::SeqCst);
}

fn write_interrupted_line(sig: libc::c_int) {
    let (buf, len) = if sig == libc::SIGINT {
        (&INT_LINE, &INT_LEN)
    } else {
        (&TERM_LINE, &TERM_LEN)
    };
    let n = len.load(Ordering::SeqCst);
    let mut out = [0u8; LINE_MAX];
    for (o, slot) in out.iter_mut().zip(buf.iter()).take(n) {
        *o = slot.load(Ordering::SeqCst);
    }
    narrate::write_all_fd(1, &out[..n]);
}

/// Own `pid`: it is killed with SIGKILL and reaped on every way out until [`forget`].
pub fn track(pid: nix::unistd::Pid) {
    let pid = pid.as_raw();
    for slot in &PIDS {
        if slot.compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst).is_ok()
        {
            return;
        }
    }
    // The table is full: kill the child now rather than risk leaking it.
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    crate::die(
        "cleanup::track (more than 1024 live children)",
        nix::errno::Errno::EAGAIN,
    );
}

/// `pid` has been reaped (or handed over): stop owning it.
pub fn forget(pid: nix::unistd::Pid) {
    let pid = pid.as_raw();
    for slot in &PIDS {
        if slot.compare_exchange(pid, 0, Ordering::SeqCst, Ordering::SeqCst).is_ok()
        {
            return;
        }
    }
}

/// The pids currently owned.
pub fn tracked() -> Vec<nix::unistd::Pid> {
    PIDS.iter()
        .map(|s| s.load(Ordering::SeqCst))
        .filter(|&p| p > 0)
        .map(nix::unistd::Pid::from_raw)
        .collect()
}

/// Paths the lab removes on every way out, each with its janitor's lifeline (the write
/// end) and pid, or 0: a fixed table of atomics, which the signal handler can read.
struct Names<const N: usize> {
    paths: [AtomicPtr<libc::c_char>; N],
    janitor_fd: [AtomicI32; N],
    janitor_pid: [AtomicI32; N],
    job: Job,
}

impl<const N: usize> Names<N> {
    const fn new(job: Job) -> Self {
        Names {
            paths: [const { AtomicPtr::new(ptr::null_mut()) }; N],
            janitor_fd: [const { AtomicI32::new(0) }; N],
            janitor_pid: [const { AtomicI32::new(0) }; N],
            job,
        }
    }

    /// Put `path` into a free slot (leaked until released, so that the signal handler
    /// can read it) and start its janitor; end the lab with `full` if none is free.
    fn hold(&self, path: CString, full: &str) {
        let path = path.into_raw();
        for (i, slot) in self.paths.iter().enumerate() {
            let free = ptr::null_mut();
            if slot
                .compare_exchange(free, path, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                if narrate::is_owner() {
                    // SAFETY: `path` is the valid C string just stored in the table.
                    let c = unsafe { CStr::from_ptr(path) };
                    if let Some((fd, pid)) = crate::janitor::start(c, self.job) {
                        self.janitor_fd[i].store(fd, Ordering::SeqCst);
                        self.janitor_pid[i].store(pid.as_raw(), Ordering::SeqCst);
                    }
                }
                return;
            }
        }
        // SAFETY: `path` came from CString::into_raw above and was not stored.
        drop(unsafe { CString::from_raw(path) });
        crate::die(full, nix::errno::Errno::EAGAIN);
    }

    /// `want` has been removed: take it out of the table and end its janitor.
    fn release(&self, want: &CStr) {
        for (i, slot) in self.paths.iter().enumerate() {
            let p = slot.load(Ordering::SeqCst);
            if p.is_null() {
                continue;
            }
            // SAFETY: non-null pointers in the table are valid CStrings made by hold.
            let name = unsafe { CStr::from_ptr(p) };
            let null = ptr::null_mut();
            if name == want
                && slot
                    .compare_exchange(p, null, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                // SAFETY: we took the pointer out of the table, so nobody else frees it.
                drop(unsafe { CString::from_raw(p) });
                self.release_janitor(i);
                return;
            }
        }
    }

    /// Release slot `i`'s janitor (one byte, then close its lifeline): it exits without
    /// removing the path; reap it (bounded: a janitor that does not end is killed).
    fn release_janitor(&self, i: usize) {
        let fd = self.janitor_fd[i].swap(0, Ordering::SeqCst);
        let pid = self.janitor_pid[i].swap(0, Ordering::SeqCst);
        if fd > 0 {
            // SAFETY: the descriptor came from janitor::start and is closed once; the
            // byte is one valid byte of a static.
            unsafe {
                libc::write(fd, b"r".as_ptr().cast(), 1);
                libc::close(fd);
            }
        }
        if pid > 0 {
            crate::wait::reap_or_kill(
                nix::unistd::Pid::from_raw(pid),
                std::time::Duration::from_secs(2),
            );
        }
    }

    /// Remove every path still held. Async-signal-safe; the paths are leaked (free is
    /// not async-signal-safe).
    fn remove_all(&self) {
        for slot in &self.paths {
            let p = slot.swap(ptr::null_mut(), Ordering::SeqCst);
            if !p.is_null() {
                self.job.remove(p);
            }
        }
    }
}

fn shm_path(name: &str) -> CString {
    CString::new(format!("/dev/shm/{}", name.trim_start_matches('/')))
        .expect("shm name has no NUL")
}

/// Own the POSIX shared-memory name `name` (as given to `shm_open`, e.g. `/proclab-shm-42`),
/// or a file `name` in /dev/shm: it is unlinked on every way out until [`forget_shm`],
/// even after a SIGKILL of the lab (a janitor, `src/janitor.rs`, does it then). Call it
/// *before* creating the name, so that no instant is uncovered.
pub fn track_shm(name: &str) {
    SHM.hold(shm_path(name), "cleanup::track_shm (more than 64 names)");
}

/// `name` has been unlinked: stop owning it.
pub fn forget_shm(name: &str) {
    SHM.release(&shm_path(name));
}

/// Own the directory `path` (a cgroup the lab made): it is removed with `rmdir` on every
/// way out, after the owned children have been killed and reaped (a cgroup can only be
/// removed once no process is left in it), until [`forget_dir`]; after a SIGKILL of the
/// lab its janitor removes it, as soon as the last process in it is gone.
pub fn track_dir(path: &str) {
    let path = CString::new(path).expect("directory path has no NUL");
    DIRS.hold(path, "cleanup::track_dir (more than 8 directories)");
}

/// `path` has been removed: stop owning it.
pub fn forget_dir(path: &str) {
    if let Ok(want) = CString::new(path) {
        DIRS.release(&want);
    }
}

/// Kill (SIGKILL) and reap every owned child, unlink every owned name, remove every owned
/// directory. Async-signal-safe (kill, waitpid, unlink, rmdir, nanosleep and atomics only). Does nothing in a forked child, so a child that
/// inherited the table never kills its siblings.
pub fn cleanup() {
    if !narrate::is_owner() {
        return;
    }
    for slot in &PIDS {
        let pid = slot.swap(0, Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill and waitpid have no memory-safety preconditions; a pid that is not
            // our child makes waitpid fail with ECHILD at once, which is fine.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                while libc::waitpid(pid, ptr::null_mut(), 0) < 0
                    && *libc::__errno_location() == libc::EINTR
                {}
            }
        }
    }
    SHM.remove_all();
    DIRS.remove_all();
}

extern "C" fn on_signal(sig: libc::c_int) {
    if narrate::is_owner() {
        cleanup();
        let msg: &[u8] = if sig == libc::SIGINT {
            b"\nproclab: interrupted (SIGINT): children killed and reaped, shared memory and cgroups removed\n"
        } else {
            b"\nproclab: terminated (SIGTERM): children killed and reaped, shared memory and cgroups removed\n"
        };
        narrate::write_all_fd(2, msg);
        write_interrupted_line(sig);
    }
    // Die of the same signal, so the parent shell sees "killed by SIGINT/SIGTERM".
    // SAFETY: signal and raise are async-signal-safe.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Install the SIGINT/SIGTERM handler and the panic hook (once per process).
pub fn install() {
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only calls async-signal-safe functions.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, ptr::null_mut());
        }
    }
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        if narrate::is_owner() {
            cleanup();
            crate::report::could_not_run(
                "the lab panicked (see the message above)",
            );
            std::process::exit(crate::EXIT_ERROR);
        }
        // a forked child leaves with _exit, never through the parent's code.
        _exit(crate::EXIT_ERROR)
    }));
}

/// `fork()`, with the child recorded by [`track`] before a SIGINT or SIGTERM can be
/// handled: both are blocked from just before the fork until the parent has recorded the
/// child, so a Ctrl-C can never land between `fork` and `track` and leak it. The child gets
/// the old signal mask back too. Ends the lab (exit 1) if `fork` fails.
///
/// # Safety
/// As for `fork`: the child may only call async-signal-safe functions.
pub unsafe fn fork_tracked() -> nix::unistd::ForkResult {
    use crate::OrDie;
    use nix::sys::signal::{SigSet, SigmaskHow, Signal};
    let mut held = SigSet::empty();
    held.add(Signal::SIGINT);
    held.add(Signal::SIGTERM);
    let old =
        held.thread_swap_mask(SigmaskHow::SIG_BLOCK).or_die("pthread_sigmask");
    // SAFETY: the caller upholds fork's contract for the child.
    let forked = unsafe { nix::unistd::fork() }.or_die("fork");
    if let nix::unistd::ForkResult::Parent { child } = forked {
        track(child);
    }
    old.thread_set_mask().or_die("pthread_sigmask"); // a pending Ctrl-C is handled now
    forked
}

/// Runs [`cleanup`] when dropped. The [`crate::Lab`] holds one.
pub struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        cleanup();
    }
}
