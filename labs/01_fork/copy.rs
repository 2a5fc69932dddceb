//! Part 1: the child's memory is a copy. Chapter: book/src/01-fork.md

use crate::words::{recv, send};
use crate::DEADLINE;
use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};
use nix::unistd::{fork, getpid, pipe, ForkResult};
use proclab::_exit;
use proclab::clock::now_ns;
use proclab::wait::waitpid_by;
use proclab::{check, cleanup, flush_stdout, lifeline, observe, say};
use proclab::{Deadline, Lab, OrDie};
use std::num::NonZeroUsize;

pub fn run(lab: &mut Lab) {
    lab.section("1. The child's memory is a copy");
    let parent = getpid().as_raw();
    let mut on_stack: u64 = 1;
    // Tests only: a MAP_SHARED page, which fork shares instead of copying.
    let value: &mut u64 = if proclab::test_removes("shared_page") {
        shared_word(1)
    } else {
        &mut on_stack
    };
    // ANCHOR: copy
    // The child reports through a pipe. Flush first, or the child prints the
    // parent's buffered text again.
    let (rx, tx) = pipe().or_die("pipe");
    flush_stdout();
    // SAFETY: the child writes its own memory and calls only async-signal-safe
    // functions: clock_gettime, prctl, getppid, write (say!, send) and _exit.
    let child = match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            let started = now_ns();
            lifeline::die_with_parent(parent); // SIGKILL if the lab dies
            *value = 99; // changes the child's copy only
            let addr = &raw const *value as u64;
            say!("I set value = {} at address {addr:#x}", *value);
            send(&tx, [*value, addr, started]);
            // _exit leaves at once, without the parent's destructors.
            _exit(0)
        }
        ForkResult::Parent { child } => child,
    };
    // ANCHOR_END: copy
    let parent_ns = now_ns();
    // ANCHOR: copy_parent
    cleanup::track(child); // killed and reaped on every way out
    drop(tx); // only the child holds a write end now
    let by = Deadline::after(DEADLINE);
    let report = recv::<3>(&rx, by); // what the child saw, where, and when
    let status = waitpid_by(child, by);
    // SAFETY: a read of our own live variable, volatile so that it really
    // comes from memory, not from what the compiler remembers writing.
    let parent_value = unsafe { std::ptr::read_volatile(value) };
    let parent_addr = &raw const *value as u64;
    // ANCHOR_END: copy_parent
    if status.is_some() {
        cleanup::forget(child);
    }
    let (Some([child_value, child_addr, child_ns]), Some(status)) =
        (report, status)
    else {
        let pid = child.as_raw();
        let why =
            format!("child {pid} did not report and exit within {DEADLINE:?}");
        lab.not_observed("child_write_invisible", why);
    };
    observe!(
        lab,
        "copy",
        "at address {parent_addr} the child saw {child_value}, the parent still \
         sees {parent_value}; the child {status}",
        pid = child.as_raw(),
        forked = true,
        child_value,
        parent_value,
        child_addr = format!("{child_addr:#x}"),
        parent_addr = format!("{parent_addr:#x}"),
        status
    );
    let (first, lead_us) = who_first(parent_ns, child_ns);
    observe!(
        lab,
        "first",
        "this time the {first} ran first after fork (by {lead_us} µs); the \
         scheduler decides, nothing guarantees it",
        pid = child.as_raw(),
        first,
        lead_us
    );
    check!(
        lab,
        "child_write_invisible",
        child_value == 99 && parent_value == 1 && child_addr == parent_addr,
        "the child's write changed its own copy: same virtual address, different \
         values"
    );
}

/// Tests only: a word in a new MAP_SHARED page, which parent and child share.
fn shared_word(v: u64) -> &'static mut u64 {
    const PAGE: NonZeroUsize = NonZeroUsize::new(4096).unwrap();
    let prot = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
    // SAFETY: a new anonymous mapping, never unmapped: the reference stays valid.
    let page = unsafe { mmap_anonymous(None, PAGE, prot, MapFlags::MAP_SHARED) }
        .or_die("mmap");
    // SAFETY: the page is zeroed, aligned and ours alone until fork.
    let word = unsafe { &mut *page.as_ptr().cast::<u64>() };
    *word = v;
    word
}

/// ("parent", µs) if the parent got back from fork first, ("child", µs) if the child
/// started first (both from the one monotonic clock).
pub fn who_first(parent_ns: u64, child_ns: u64) -> (&'static str, u64) {
    if child_ns < parent_ns {
        ("child", (parent_ns - child_ns) / 1000)
    } else {
        ("parent", (child_ns - parent_ns) / 1000)
    }
}
