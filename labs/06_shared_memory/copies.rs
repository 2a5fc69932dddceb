//! Section 1: after `fork` an ordinary variable is a copy in each process (made page
//! by page on the first write: copy-on-write), while a `MAP_SHARED` mapping made before
//! the fork is the same memory in both. The parent reads the child's copy itself, at
//! the same address, through `/proc/CHILD/mem`: it does not take the child's word.

use crate::children::{reap, Gate, LIMIT};
use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};
use nix::unistd::{getpid, pipe, write, ForkResult, Pid};
use proclab::fdio::read_full_by;
use proclab::{
    check, cleanup, flush_stdout, lifeline, observe, Deadline, Lab, OrDie,
};
use std::num::NonZeroUsize;
use std::os::unix::fs::FileExt;
use std::ptr;

pub fn run(lab: &mut Lab) {
    let map_private = proclab::test_removes("map_private"); // tests only: a copy
    let skip_write = proclab::test_removes("child_skips_private_write"); // tests only
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
    let (done_rx, done_tx) = pipe().or_die("pipe"); // "I have written"
    let gate = Gate::new(); // the child stays until the parent has looked
    flush_stdout();
    // SAFETY: the child only stores to memory, writes, reads and _exits.
    let child = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => unsafe {
            lifeline::die_with_parent(parent);
            if !skip_write {
                ptr::write_volatile(&mut private, 42); // its own copy (on write)
            }
            shared.write_volatile(42); // the one shared page
            let _ = write(&done_tx, b"w");
            gate.wait();
            libc::_exit(0)
        },
        ForkResult::Parent { child } => child,
    };
    // ANCHOR_END: copies
    drop(done_tx);
    // ANCHOR: copies_parent
    let wrote =
        read_full_by(&done_rx, &mut [0u8; 1], Deadline::after(LIMIT)) == Ok(1);
    let at = ptr::addr_of!(private) as u64; // the same address in both processes
    let in_child = read_u64(child, at); // the child's copy, read by the parent
    gate.open(); // the child may go
    let status = reap(child);
    // SAFETY: a read of the parent's own variable...
    let private = unsafe { ptr::read_volatile(&private) };
    // SAFETY: ...and one of the live mapping.
    let now = unsafe { shared.read_volatile() };
    // ANCHOR_END: copies_parent
    // SAFETY: no pointer into the mapping is used after this.
    unsafe { munmap(shared.cast(), 4096) }.or_die("munmap");
    let child_copy = in_child.map_or("unreadable".to_string(), |v| v.to_string());
    observe!(
        lab,
        "copies",
        "child {pid} wrote 42 to both and {status}; at {address} its copy read \
         {child_copy} (/proc/{pid}/mem), the parent's reads private = {private}; \
         MAP_SHARED = {shared}",
        pid = child.as_raw(),
        ppid = parent,
        forked = true,
        address = format!("{at:#x}"),
        child_private = in_child,
        private,
        shared = now,
        written = 42,
        status
    );
    check!(
        lab,
        "private_stays_private",
        wrote && in_child == Some(42) && private == 1,
        "an ordinary variable is two copies: at one address the child's reads 42, the \
         parent's still 1"
    );
    check!(
        lab,
        "map_shared_is_shared",
        wrote && now == 42 && status.code() == Some(0),
        "a MAP_SHARED mapping made before fork is one memory: the parent sees the \
         child's write"
    );
}

/// 8 bytes of `pid`'s memory at `address`, read through /proc/PID/mem (a parent may
/// read its child's memory: the same permission as ptrace). None if it cannot.
fn read_u64(pid: Pid, address: u64) -> Option<u64> {
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut word = [0u8; 8];
    mem.read_exact_at(&mut word, address).ok()?;
    Some(u64::from_le_bytes(word))
}
