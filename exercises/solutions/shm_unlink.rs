//! Solution of shm-unlink: unlink the name right after mapping the segment; the mapping
//! (inherited by the child at fork) keeps the memory until the last process unmaps it.

use nix::fcntl::OFlag;
use nix::sys::mman::{mmap, shm_open, shm_unlink, MapFlags, ProtFlags};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ftruncate, ForkResult};
use proclab::say_as;
use std::num::NonZeroUsize;
use std::time::Duration;
use proclab::_exit;

pub fn main() {
    let name = std::env::args().nth(1).expect("usage: ex-shm-unlink /NAME");
    let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR;
    let fd = shm_open(name.as_str(), flags, Mode::from_bits_truncate(0o600)).expect("shm_open");
    ftruncate(&fd, 4096).expect("ftruncate");
    let (len, prot) = (NonZeroUsize::new(4096).unwrap(), ProtFlags::PROT_READ | ProtFlags::PROT_WRITE);
    // SAFETY: a fresh shared mapping of the segment, kept for the whole program.
    let map = unsafe { mmap(None, len, prot, MapFlags::MAP_SHARED, &fd, 0) }.expect("mmap");
    let page = map.as_ptr() as *mut u8;
    // Mapped (and soon inherited by the child), the memory needs no name any more.
    shm_unlink(name.as_str()).expect("shm_unlink");
    // SAFETY: the child writes into the shared page, sleeps and calls _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let hello = b"hello through shared memory";
            // SAFETY: the page is 4096 bytes long, mapped in this process too.
            unsafe { std::ptr::copy_nonoverlapping(hello.as_ptr(), page, hello.len()) };
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
