//! What execve(2) takes, built before a fork (a forked child may not allocate), and a
//! descriptor handed across exec.

use std::ffi::CString;
use std::os::fd::RawFd;

/// A NULL-terminated array of C strings (an argv or an envp) and the strings it
/// points into, kept alive together.
pub struct Strings {
    _owned: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

impl Strings {
    pub fn new<S: Into<Vec<u8>>>(items: impl IntoIterator<Item = S>) -> Strings {
        let owned: Vec<CString> = items
            .into_iter()
            .map(|s| CString::new(s).unwrap_or_default())
            .collect();
        let ptrs =
            owned.iter().map(|s| s.as_ptr()).chain([std::ptr::null()]).collect();
        Strings { _owned: owned, ptrs }
    }

    /// The array, for execve.
    pub fn array(&self) -> *const *const libc::c_char {
        self.ptrs.as_ptr()
    }

    /// The first string (an argv's program), for execve's path.
    pub fn first(&self) -> *const libc::c_char {
        self.ptrs[0]
    }
}

/// This program's path: the Procfile's $FORMATION, re-executed in every role.
pub fn exe() -> String {
    std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default()
}

/// In a forked child: make `fd` available as `to` across exec (async-signal-safe).
pub fn pass_fd(fd: RawFd, to: RawFd) {
    // SAFETY: dup2 and fcntl on descriptors of this process.
    unsafe {
        if fd == to {
            libc::fcntl(fd, libc::F_SETFD, 0); // dup2 onto itself would keep CLOEXEC
        } else {
            libc::dup2(fd, to); // the copy is not close-on-exec
        }
    }
}
