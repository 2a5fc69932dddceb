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
//! [`forget_dir`] after `rmdir`.

use crate::narrate;
use std::ffi::CString;
use std::ptr;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicUsize, Ordering,
};

const PID_SLOTS: usize = 1024;
const SHM_SLOTS: usize = 64;
const DIR_SLOTS: usize = 8;

static PIDS: [AtomicI32; PID_SLOTS] = [const { AtomicI32::new(0) }; PID_SLOTS];
static SHM: [AtomicPtr<libc::c_char>; SHM_SLOTS] =
    [const { AtomicPtr::new(ptr::null_mut()) }; SHM_SLOTS];
static DIRS: [AtomicPtr<libc::c_char>; DIR_SLOTS] =
    [const { AtomicPtr::new(ptr::null_mut()) }; DIR_SLOTS];
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

fn shm_path(name: &str) -> CString {
    CString::new(format!("/dev/shm/{}", name.trim_start_matches('/')))
        .expect("shm name has no NUL")
}

/// Own the POSIX shared-memory name `name` (as given to `shm_open`, e.g. `/proclab-shm-42`):
/// it is unlinked on every way out until [`forget_shm`].
pub fn track_shm(name: &str) {
    hold(&SHM, shm_path(name), "cleanup::track_shm (more than 64 names)");
}

/// `name` has been unlinked: stop owning it.
pub fn forget_shm(name: &str) {
    release(&SHM, &shm_path(name));
}

/// Own the directory `path` (a cgroup the lab made): it is removed with `rmdir` on every
/// way out, after the owned children have been killed and reaped (a cgroup can only be
/// removed once no process is left in it), until [`forget_dir`].
pub fn track_dir(path: &str) {
    let path = CString::new(path).expect("directory path has no NUL");
    hold(&DIRS, path, "cleanup::track_dir (more than 8 directories)");
}

/// `path` has been removed: stop owning it.
pub fn forget_dir(path: &str) {
    if let Ok(want) = CString::new(path) {
        release(&DIRS, &want);
    }
}

/// Put `path` into the first free slot of `table` (leaked until released, so that the
/// signal handler can read it); end the lab if the table is full.
fn hold(table: &[AtomicPtr<libc::c_char>], path: CString, what: &str) {
    let path = path.into_raw();
    for slot in table {
        let free = ptr::null_mut();
        if slot
            .compare_exchange(free, path, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return;
        }
    }
    // SAFETY: `path` came from CString::into_raw above and was not stored.
    drop(unsafe { CString::from_raw(path) });
    crate::die(what, nix::errno::Errno::EAGAIN);
}

/// Take `want` out of `table` and free it.
fn release(table: &[AtomicPtr<libc::c_char>], want: &std::ffi::CStr) {
    for slot in table {
        let p = slot.load(Ordering::SeqCst);
        if p.is_null() {
            continue;
        }
        // SAFETY: non-null pointers in the tables are valid CStrings made by hold.
        let name = unsafe { std::ffi::CStr::from_ptr(p) };
        let null = ptr::null_mut();
        if name == want
            && slot
                .compare_exchange(p, null, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            // SAFETY: we took the pointer out of the table, so nobody else frees it.
            drop(unsafe { CString::from_raw(p) });
            return;
        }
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
    for slot in &SHM {
        let p = slot.swap(ptr::null_mut(), Ordering::SeqCst);
        if !p.is_null() {
            // SAFETY: p is a valid NUL-terminated path; it is leaked (free is not
            // async-signal-safe).
            unsafe { libc::unlink(p) };
        }
    }
    for slot in &DIRS {
        let p = slot.swap(ptr::null_mut(), Ordering::SeqCst);
        if p.is_null() {
            continue;
        }
        // A cgroup stays busy for a moment after its last process was reaped: retry
        // EBUSY for up to 200 ms.
        let pause = libc::timespec { tv_sec: 0, tv_nsec: 1_000_000 };
        for _ in 0..200 {
            // SAFETY: p is a valid NUL-terminated path (leaked, as above); rmdir,
            // nanosleep and errno are async-signal-safe.
            unsafe {
                if libc::rmdir(p) == 0 || *libc::__errno_location() != libc::EBUSY {
                    break;
                }
                libc::nanosleep(&pause, ptr::null_mut());
            }
        }
    }
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
        // SAFETY: a forked child leaves with _exit, never through the parent's code.
        unsafe { libc::_exit(crate::EXIT_ERROR) }
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
