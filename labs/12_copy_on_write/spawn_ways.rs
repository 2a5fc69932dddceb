//! The two ways to run a program that copy no page tables: vfork (written out as
//! `clone(CLONE_VM | CLONE_VFORK)`) + execve, and posix_spawn. Each runs /bin/true and
//! waits for it.

use nix::errno::Errno;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use proclab::{die, Status};
use std::ffi::CString;

extern "C" {
    static environ: *const *const libc::c_char;
}

/// `/bin/true` as execve wants it, built before any fork or clone.
pub struct TrueProgram {
    path: CString,
    _arg0: CString,
    argv: [*const libc::c_char; 2],
}

impl TrueProgram {
    pub fn new() -> Box<TrueProgram> {
        let path = CString::new("/bin/true").expect("no NUL");
        let arg0 = CString::new("true").expect("no NUL");
        let argv = [arg0.as_ptr(), std::ptr::null()];
        Box::new(TrueProgram { path, _arg0: arg0, argv })
    }
}

/// vfork + execve /bin/true + waitpid: the child runs in the parent's memory (nothing
/// copied, not even page tables) on its own small stack, and the parent sleeps until the
/// child has called execve.
pub fn vfork_true(prog: &TrueProgram, stack: &mut [u8]) {
    // ANCHOR: vfork
    extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
        let p = arg as *const TrueProgram;
        // SAFETY: p is the TrueProgram the suspended parent keeps alive; execve
        // and _exit are the only calls made.
        unsafe {
            libc::execve((*p).path.as_ptr(), (*p).argv.as_ptr(), environ);
            libc::_exit(127)
        }
    }
    // Stacks grow down: the child starts at the 16-aligned top of its own stack.
    let top = (stack.as_mut_ptr() as usize + stack.len()) & !15;
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD;
    let arg = prog as *const TrueProgram as *mut libc::c_void;
    // SAFETY: the child only runs `child` on its own stack; the parent is
    // suspended until it has called execve.
    let pid = unsafe { libc::clone(child, top as *mut libc::c_void, flags, arg) };
    // ANCHOR_END: vfork
    if pid < 0 {
        die("clone", Errno::last());
    }
    wait_true(pid, "vfork");
}

/// posix_spawn /bin/true + waitpid (glibc does it with clone(CLONE_VM | CLONE_VFORK)).
pub fn spawn_true(prog: &TrueProgram) {
    let mut pid = 0;
    let argv = prog.argv.as_ptr() as *const *mut libc::c_char;
    // SAFETY: valid path, argv and environment; no file actions, no attributes.
    let r = unsafe {
        let env = environ as *const *mut libc::c_char;
        let (actions, attrs) = (std::ptr::null(), std::ptr::null());
        libc::posix_spawn(&mut pid, prog.path.as_ptr(), actions, attrs, argv, env)
    };
    if r != 0 {
        die("posix_spawn", Errno::from_raw(r));
    }
    wait_true(pid, "posix_spawn");
}

/// Reap the child running /bin/true, which exits at once with status 0.
fn wait_true(pid: i32, way: &str) {
    let st = Status(waitpid(Pid::from_raw(pid), None)); // true exits at once
    if st.code() != Some(0) {
        die(&format!("{way} child running /bin/true: {st}"), Errno::ENOEXEC);
    }
}
