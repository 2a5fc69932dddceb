//! Exercise shm-unlink (chapter 6, book/src/06-shm.md): leave nothing in /dev/shm.
//!
//! The program creates a POSIX shared-memory segment (its name is the argument), maps it,
//! and forks a child that writes a greeting into it; the parent reads it, then both work
//! on for 2 s. A name in /dev/shm outlives every process until someone unlinks it, and a
//! process killed by SIGKILL runs no clean-up code. As given, the name is never unlinked.
//! Unlink it as soon as no process needs the name any more, so that even a SIGKILL
//! leaves nothing behind (a mapping keeps the memory alive without its name).
//!
//! Check: `cargo run --bin lab -- check shm-unlink`. The checker waits until both
//! processes map the segment (/proc/PID/maps), kills them with SIGKILL, and looks in
//! /dev/shm: the name must be gone.

use nix::fcntl::OFlag;
use nix::sys::mman::{mmap, shm_open, MapFlags, ProtFlags};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ftruncate, ForkResult};
use proclab::_exit;
use proclab::say_as;
use std::num::NonZeroUsize;
use std::time::Duration;

fn main() {
    let name = std::env::args().nth(1).expect("usage: ex-shm-unlink /NAME");
    let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR;
    let fd = shm_open(name.as_str(), flags, Mode::from_bits_truncate(0o600))
        .expect("shm_open");
    ftruncate(&fd, 4096).expect("ftruncate");
    let (len, prot) = (
        NonZeroUsize::new(4096).unwrap(),
        ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
    );
    // SAFETY: a fresh shared mapping of the segment, kept for the whole program.
    let map = unsafe { mmap(None, len, prot, MapFlags::MAP_SHARED, &fd, 0) }
        .expect("mmap");
    let page = map.as_ptr() as *mut u8;
    // TODO: no name may be left in /dev/shm, whatever ends this program.
    // SAFETY: the child writes into the shared page, sleeps and calls _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let hello = b"hello through shared memory";
            // SAFETY: the page is 4096 bytes long, mapped in this process too.
            unsafe {
                std::ptr::copy_nonoverlapping(hello.as_ptr(), page, hello.len())
            };
            std::thread::sleep(Duration::from_secs(2));
            _exit(0)
        }
        ForkResult::Parent { child } => {
            std::thread::sleep(Duration::from_millis(100));
            // SAFETY: the page holds the child's bytes (or zeros); it is never unmapped.
            let text = unsafe { std::slice::from_raw_parts(page, 27) };
            say_as!("parent", "read {:?}", String::from_utf8_lossy(text));
            std::thread::sleep(Duration::from_secs(2));
            waitpid(child, None).expect("waitpid");
        }
    }
}
