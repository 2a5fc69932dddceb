//! Section 1: after `fork` an ordinary variable is a copy in each process (made page
//! by page on the first write: copy-on-write), while a `MAP_SHARED` mapping made before
//! the fork is the same memory in both.

use crate::children::reap;
use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};
use nix::unistd::{getpid, ForkResult};
use proclab::{check, cleanup, flush_stdout, lifeline, observe, Lab, OrDie};
use std::num::NonZeroUsize;
use std::ptr;

pub fn run(lab: &mut Lab) {
    let map_private = proclab::test_removes("map_private"); // tests only: a copy
    let parent = getpid().as_raw();
    let len = NonZeroUsize::new(4096).expect("non-zero");
    // ANCHOR: copies
    let mut private: u64 = 1;
    let flags =
        if map_private { MapFlags::MAP_PRIVATE } else { MapFlags::MAP_SHARED };
    let rw = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
    // SAFETY: a fresh anonymous mapping; nothing else refers to it.
    let shared = unsafe { mmap_anonymous(None, len, rw, flags) }.or_die("mmap");
    let shared = shared.cast::<u64>(); // zero-filled
    flush_stdout();
    // SAFETY: the child only stores to memory and _exits.
    let child = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => unsafe {
            lifeline::die_with_parent(parent);
            ptr::write_volatile(&mut private, 42); // its own copy (copy-on-write)
            shared.write_volatile(42); // the one shared page
            libc::_exit(0)
        },
        ForkResult::Parent { child } => child,
    };
    let status = reap(child);
    // SAFETY: a read of the parent's own variable...
    let private = unsafe { ptr::read_volatile(&private) };
    // SAFETY: ...and one of the live mapping.
    let now = unsafe { shared.read_volatile() };
    // ANCHOR_END: copies
    // SAFETY: no pointer into the mapping is used after this.
    unsafe { munmap(shared.cast(), 4096) }.or_die("munmap");
    observe!(
        lab,
        "copies",
        "child {child} wrote 42 to both and {status}; the parent reads private = \
         {private}, MAP_SHARED = {shared}",
        child = child.as_raw(),
        private,
        shared = now,
        written = 42,
        status
    );
    check!(
        lab,
        "private_stays_private",
        private == 1,
        "an ordinary variable written by the child is unchanged in the parent (each \
         has its own copy)"
    );
    check!(
        lab,
        "map_shared_is_shared",
        now == 42 && status.code() == Some(0),
        "a MAP_SHARED mapping made before fork is one memory: the parent sees the \
         child's write"
    );
}
