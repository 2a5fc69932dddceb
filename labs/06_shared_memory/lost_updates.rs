//! Section 3: N processes increment one counter in shared memory with a plain load and
//! store, at the same time: a process that stores a value it loaded before another's
//! store overwrites that update, and the total comes out short.

use crate::args::Args;
use crate::counting::{count, Count, Counters};
use proclab::{check, cpu, Lab};
use std::ptr::{self, addr_of_mut};

pub fn run(lab: &mut Lab, args: &Args, c: *mut Counters) -> Count {
    // Tests only: one process does all the counting, so no other can race it.
    let (procs, iters) = match proclab::test_removes("one_process") {
        true => (1, args.procs as u64 * args.iters),
        false => (args.procs as usize, args.iters),
    };
    // SAFETY: read once every counting process has been reaped.
    let counted = || unsafe { ptr::read_volatile(addr_of_mut!((*c).plain)) };
    let run = count(lab, c, "plain", (procs, iters), plain, counted);
    let (lost, expected) = (run.lost(), run.expected);
    let on = cpu::allowed().len().min(procs);
    let share = lost as f64 * 100.0 / expected as f64;
    let text = if lost > 0 {
        format!(
            "{procs} processes pinned to {on} CPU(s) lost {lost} of {expected} \
             increments ({share:.1}%): load, add, store is not one step"
        )
    } else {
        format!(
            "no update was lost on this run ({on} CPU(s)): the race is real but did \
             not show; try more --iters"
        )
    };
    check!(lab, "updates_lost", lost > 0 && run.all_exited, "{text}");
    run
}

// ANCHOR: increment
/// One process's share of the plain counting: `iters` loads and stores.
///
/// # Safety
/// `c` points to the shared Counters.
unsafe fn plain(c: *mut Counters, iters: u64) {
    let n = addr_of_mut!((*c).plain);
    for _ in 0..iters {
        let v = ptr::read_volatile(n); // load...
        ptr::write_volatile(n, v + 1); // ...store: others may have stored since
    }
}
// ANCHOR_END: increment
