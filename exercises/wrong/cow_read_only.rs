//! A wrong solution of cow-read-only: the child masks a copy of the table instead. The
//! parent's pages stay shared, but the copy is 64 MiB of new private memory, which costs
//! the same as copying. The check `no_copy` fails.

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use proclab::say_as;
use proclab::_exit;

const ENTRIES: u64 = 8 << 20; // 8 Mi entries of 8 bytes: 64 MiB

pub fn main() {
    let seed: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(7);
    let table: Vec<u64> = (0..ENTRIES).map(|i| i.wrapping_mul(seed) ^ (i >> 3)).collect();
    // SAFETY: the child only computes on memory it already has, then calls _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            // Leave the parent's table alone: mask a copy of it.
            let mut copy = table.clone();
            copy.iter_mut().for_each(|x| *x &= 0xffff);
            let sum = copy.iter().fold(0u64, |s, &x| s.wrapping_add(x));
            say_as!("child", "checksum {sum}");
            _exit((sum % 256) as i32)
        }
        ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
            WaitStatus::Exited(_, code) => std::process::exit(code),
            other => panic!("the child did not exit: {other:?}"),
        },
    }
}
