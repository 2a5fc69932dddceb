//! The file-lock scenarios' plumbing: two lock files in /dev/shm, and the gate through
//! which a lock child says "ready" and hears "go" (one byte each way).

use nix::fcntl::OFlag;
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::{fstat, Mode};
use nix::unistd::{getpid, pipe2};
use proclab::{cleanup, fdio, Deadline, OrDie};
use std::ffi::CString;
use std::os::fd::OwnedFd;

/// Two lock files in /dev/shm (tmpfs), named after the lab's pid and unlinked on every
/// way out (SIGINT and SIGTERM included; after a SIGKILL, the harness's janitor does it).
pub struct LockFiles {
    names: [String; 2],
    /// (inode, short name) of each: /proc/locks names a file by its inode.
    pub files: [(u64, &'static str); 2],
    /// The paths the children open.
    pub paths: [CString; 2],
}

impl LockFiles {
    pub fn create() -> LockFiles {
        let me = getpid();
        let names = ["a", "b"].map(|x| format!("/proclab-deadlock-{me}-lock-{x}"));
        let mut inodes = [0u64; 2];
        for (i, n) in names.iter().enumerate() {
            let (flags, mode) =
                (OFlag::O_CREAT | OFlag::O_RDWR, Mode::from_bits_truncate(0o600));
            cleanup::track_shm(n); // before it exists: unlinked on every way out
            let fd = shm_open(n.as_str(), flags, mode).or_die("shm_open");
            inodes[i] = fstat(&fd).or_die("fstat").st_ino;
        }
        let path =
            |n: &String| CString::new(format!("/dev/shm{n}")).expect("no NUL");
        LockFiles {
            paths: [path(&names[0]), path(&names[1])],
            files: [(inodes[0], "lock-a"), (inodes[1], "lock-b")],
            names,
        }
    }

    /// Remove both (the normal end; the cleanup guard does it on every other way out).
    pub fn remove(self) {
        for n in &self.names {
            shm_unlink(n.as_str()).or_die("shm_unlink");
            cleanup::forget_shm(n);
        }
    }
}

/// One pipe each way between the lab and one lock child: "ready" up, "go" down.
pub struct Gate {
    ready_r: OwnedFd,
    ready_w: OwnedFd,
    go_r: OwnedFd,
    go_w: OwnedFd,
}

impl Gate {
    pub fn new() -> Gate {
        let (ready_r, ready_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2");
        let (go_r, go_w) = pipe2(OFlag::O_CLOEXEC).or_die("pipe2");
        Gate { ready_r, ready_w, go_r, go_w }
    }

    /// In the child (async-signal-safe): say "ready".
    pub fn ready(&self) {
        let _ = fdio::write_all(&self.ready_w, b"!");
    }

    /// In the child (async-signal-safe): wait for "go". The lab's death ends the child
    /// (PR_SET_PDEATHSIG), not this read.
    pub fn wait_go(&self) {
        let _ = fdio::read_full(&self.go_r, &mut [0u8; 1]);
    }

    /// In the lab: wait for "ready" until `deadline` (lab time); false if it never came.
    pub fn ready_by(&self, deadline: Deadline) -> bool {
        fdio::read_full_by(&self.ready_r, &mut [0u8; 1], deadline) == Ok(1)
    }

    /// In the lab: say "go".
    pub fn go(&self) {
        let _ = fdio::write_all(&self.go_w, b"!");
    }
}
