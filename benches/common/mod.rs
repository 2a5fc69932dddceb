//! Raw helpers shared by the benches (`threads_vs_processes`, `versus_c`): one copy of
//! each. Every call is one system call or a plain loop, so a forked child may use them,
//! and one iteration of each `spawn` figure, so that the criterion suite and the rounds
//! against the C reference time the very same code.
#![allow(dead_code)] // each bench uses its own subset

pub mod rounds;

use std::ffi::CString;
use std::hint::black_box;
use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicU64};

extern "C" {
    static environ: *const *const libc::c_char;
}

/// `/bin/true` as execve wants it, built before any fork (no allocation after fork).
pub struct TrueProgram {
    pub path: CString,
    pub argv: [*const libc::c_char; 2],
    _arg0: CString,
}

impl TrueProgram {
    pub fn new() -> Box<TrueProgram> {
        let path = CString::new("/bin/true").unwrap();
        let arg0 = CString::new("true").unwrap();
        let argv = [arg0.as_ptr(), ptr::null()];
        Box::new(TrueProgram { path, argv, _arg0: arg0 })
    }

    /// execve(2) this program, or `_exit(127)`: only for a child after fork or vfork.
    pub fn exec(&self) -> ! {
        // SAFETY: execve and _exit are async-signal-safe; the strings were built before.
        unsafe {
            libc::execve(self.path.as_ptr(), self.argv.as_ptr(), environ);
            libc::_exit(127)
        }
    }
}

/// cargo runs a bench with LD_LIBRARY_PATH set to its build directories and the
/// toolchain's libraries: every exec of /bin/true would then search them all (some fifty
/// failed `openat`s) before finding libc. Call first thing, before any thread starts,
/// so that an exec costs what it costs from a shell.
pub fn plain_environment() {
    std::env::remove_var("LD_LIBRARY_PATH");
}

pub fn fork_or_panic() -> libc::pid_t {
    // SAFETY: the callers' children only use async-signal-safe calls and leave with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    pid
}

pub fn wait_ok(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: plain system call on our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        r == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child {pid} status {status:#x}"
    );
}

pub fn child_exit(ok: bool) -> ! {
    // SAFETY: _exit is async-signal-safe; the child never returns into the bench.
    unsafe { libc::_exit(if ok { 0 } else { 1 }) }
}

pub fn read_fd(fd: i32, buf: &mut [u8]) -> isize {
    // SAFETY: buf is valid for buf.len() bytes.
    unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }
}

pub fn write_fd(fd: i32, buf: &[u8]) -> isize {
    // SAFETY: buf is valid for buf.len() bytes.
    unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) }
}

pub fn close_fd(fd: i32) {
    // SAFETY: closing an fd this process owns and will not use again.
    unsafe { libc::close(fd) };
}

/// pipe(2): (read end, write end) as raw fds, closed by the caller.
pub fn raw_pipe() -> (i32, i32) {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors.
    let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(r, 0, "pipe: {}", std::io::Error::last_os_error());
    (fds[0], fds[1])
}

/// socketpair(2) of Unix stream sockets, as raw fds, closed by the caller.
pub fn raw_socketpair() -> (i32, i32) {
    let mut sv = [0; 2];
    // SAFETY: sv has room for the two descriptors.
    let r = unsafe {
        libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv.as_mut_ptr())
    };
    assert_eq!(r, 0, "socketpair: {}", std::io::Error::last_os_error());
    (sv[0], sv[1])
}

/// A buffer of `len` bytes, all `byte`: malloc'd and written (no page fault left for
/// later), as C's `malloc` + `memset`. Never 0: `vec![0; n]` is calloc'd and left
/// untouched, and compilers turn malloc + memset(0) into calloc too.
pub fn filled(len: usize, byte: u8) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    v.resize(len, byte);
    v
}

/// An anonymous MAP_SHARED mapping: shared with children forked after it was made.
pub struct SharedMap {
    pub ptr: *mut u8,
    pub len: usize,
}

impl SharedMap {
    pub fn new(len: usize) -> SharedMap {
        // SAFETY: a fresh anonymous mapping; no existing memory is touched.
        let ptr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(
            ptr != libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        SharedMap { ptr: ptr.cast(), len }
    }
    pub fn word(&self, i: usize) -> &AtomicU32 {
        assert!((i + 1) * 4 <= self.len);
        // SAFETY: in bounds, 4-aligned (page-aligned base), and only ever accessed atomically.
        unsafe { &*(self.ptr.add(i * 4) as *const AtomicU32) }
    }
    pub fn word64(&self, byte_offset: usize) -> &AtomicU64 {
        assert!(byte_offset.is_multiple_of(8) && byte_offset + 8 <= self.len);
        // SAFETY: in bounds, 8-aligned, and only ever accessed atomically.
        unsafe { &*(self.ptr.add(byte_offset) as *const AtomicU64) }
    }
    pub fn u64s(&self) -> *mut u64 {
        self.ptr.cast()
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

pub fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT on a valid shared word; returns at once if it no longer holds
    // `expected`. Not FUTEX_PRIVATE: the word is shared between processes.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ptr::null::<libc::timespec>(),
        )
    };
}

pub fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE of at most one waiter on a valid shared word.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1) };
}

/// Where the two sides of a round trip or a transfer run: the parent goes on CPU 0 for
/// the whole round (its children inherit that); across CPUs, the child moves to CPU 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Placement {
    Unpinned,
    SameCpu,
    CrossCpu,
}

impl Placement {
    /// In the parent, before it forks or spawns the other side.
    pub fn begin(self) {
        if self != Placement::Unpinned {
            proclab::cpu::pin(0).expect("sched_setaffinity");
        }
    }
    /// In the child (or the other thread), first thing.
    pub fn child(self) {
        if self == Placement::CrossCpu {
            let _ = proclab::cpu::pin(1);
        }
    }
    /// In the parent, at the end of the round.
    pub fn end(self) {
        if self != Placement::Unpinned {
            proclab::cpu::unpin().expect("sched_setaffinity");
        }
    }
}

// ---------------------------------------------------------------- one start each

pub fn thread_spawn_join() {
    std::thread::spawn(|| black_box(1u32)).join().unwrap();
}

/// `pthread_create` with default attributes and `pthread_join`, what the C loop does:
/// std's spawn also sets up a guard-paged signal stack per thread.
pub fn pthread_create_join() {
    extern "C" fn noop(arg: *mut libc::c_void) -> *mut libc::c_void {
        arg
    }
    let (mut t, attr, arg): (libc::pthread_t, _, _) =
        (0, ptr::null(), ptr::null_mut());
    // SAFETY: default attributes; `noop` touches nothing; joined right away.
    let r = unsafe { libc::pthread_create(&mut t, attr, noop, arg) };
    assert_eq!(r, 0, "pthread_create");
    // SAFETY: t is a joinable thread we created.
    let r = unsafe { libc::pthread_join(t, ptr::null_mut()) };
    assert_eq!(r, 0, "pthread_join");
}

pub fn fork_exit_wait() {
    let pid = fork_or_panic(); // copies the page tables, shares every page
    if pid == 0 {
        child_exit(true); // the child only _exits
    }
    wait_ok(pid);
}

/// clone(CLONE_VM | CLONE_VFORK) is what vfork and glibc's posix_spawn do: the child
/// borrows the parent's memory, and the parent sleeps until the child has exec'd.
pub fn vfork_true_wait(prog: &TrueProgram, stack_top: *mut libc::c_void) {
    extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: arg is the TrueProgram the parent keeps alive while it is suspended.
        let p = unsafe { &*(arg as *const TrueProgram) };
        p.exec()
    }
    // SAFETY: the child runs on its own stack and only calls execve/_exit; the parent is
    // suspended (CLONE_VFORK) until then, so `prog` and the stack live.
    let pid = unsafe {
        libc::clone(
            child,
            stack_top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            prog as *const TrueProgram as *mut libc::c_void,
        )
    };
    assert!(pid > 0, "clone: {}", std::io::Error::last_os_error());
    wait_ok(pid);
}

pub fn fork_exec_true_wait(prog: &TrueProgram) {
    let pid = fork_or_panic();
    if pid == 0 {
        prog.exec();
    }
    wait_ok(pid);
}

pub fn posix_spawn_true_wait(prog: &TrueProgram) {
    let mut pid = 0;
    // SAFETY: valid path, argv and environ; no file actions or attributes.
    let r = unsafe {
        libc::posix_spawn(
            &mut pid,
            prog.path.as_ptr(),
            ptr::null(),
            ptr::null(),
            prog.argv.as_ptr() as *const *mut libc::c_char,
            environ as *const *mut libc::c_char,
        )
    };
    assert_eq!(r, 0, "posix_spawn");
    wait_ok(pid);
}
