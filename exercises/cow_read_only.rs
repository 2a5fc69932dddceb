//! Exercise cow-read-only (chapter 12, book/src/12-cow.md): read the parent's pages free.
//!
//! The parent fills a 64 MiB table, then forks a child that computes a checksum of it (the
//! sum of every entry's low 16 bits) and exits with its low 8 bits; the parent exits with
//! the child's status. After fork the two share every page until one of them writes it.
//! As given, the child masks each entry in place before adding them up, which makes the
//! kernel copy all 16384 pages. Compute the same checksum without that.
//!
//! Check: `cargo run --bin lab -- check cow-read-only`. The checker knows the checksum
//! (the table comes from a seed it passes), reads your exit status, and from /proc the
//! child's memory (RssAnon) and page faults: the child must copy almost nothing.

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use proclab::_exit;
use proclab::say_as;

const ENTRIES: u64 = 8 << 20; // 8 Mi entries of 8 bytes: 64 MiB

fn main() {
    let seed: u64 =
        std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(7);
    let table: Vec<u64> =
        (0..ENTRIES).map(|i| i.wrapping_mul(seed) ^ (i >> 3)).collect();
    // SAFETY: the child only computes on memory it already has, then calls _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let mut table = table;
            // TODO: the same sum, without writing to the table.
            table.iter_mut().for_each(|x| *x &= 0xffff);
            let sum = table.iter().fold(0u64, |s, &x| s.wrapping_add(x));
            say_as!("child", "checksum {sum}");
            _exit((sum % 256) as i32)
        }
        ForkResult::Parent { child } => {
            match waitpid(child, None).expect("waitpid") {
                WaitStatus::Exited(_, code) => std::process::exit(code),
                other => panic!("the child did not exit: {other:?}"),
            }
        }
    }
}
