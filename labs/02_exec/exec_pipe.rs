//! Plumbing: argv for execvp, built before fork, and the close-on-exec pipe through
//! which a child reports a failed exec (async-signal-safe on the child's side).

use nix::errno::Errno;
use proclab::_exit;
use proclab::fdio::read_full_by;
use proclab::Deadline;
use std::ffi::{c_char, CString};
use std::os::fd::OwnedFd;

/// A NULL-terminated argv for execvp, built before fork (the child must not allocate).
pub fn argv(args: &[CString]) -> Vec<*const c_char> {
    args.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect()
}

/// A C string from text without NUL bytes.
pub fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

/// In the child: exec failed; send errno through `err` and leave with 127, as a shell
/// does. Async-signal-safe.
pub fn exec_failed(err: &OwnedFd) -> ! {
    let errno = Errno::last_raw();
    let _ = proclab::fdio::write_all(err, &errno.to_ne_bytes());
    // _exit leaves at once, without running the parent's destructors.
    _exit(127)
}

/// What a child's close-on-exec pipe said by `by`: `Ok` if it closed without a word
/// (the exec succeeded, or the child ended), the errno the child sent if the exec
/// failed, None if the child neither exec'd nor ended in time.
pub fn exec_result(err_rx: &OwnedFd, by: Deadline) -> Option<Result<(), Errno>> {
    let mut buf = [0u8; 4];
    match read_full_by(err_rx, &mut buf, by) {
        Err(Errno::ETIMEDOUT) => None,
        Ok(4) => Some(Err(Errno::from_raw(i32::from_ne_bytes(buf)))),
        _ => Some(Ok(())),
    }
}
