//! # shm: shared memory between processes, its races, and three ways to fix them
//!
//! After `fork` every ordinary variable is a copy; only a `MAP_SHARED` mapping is one
//! memory. Named POSIX shared memory is opened by name after `exec`; a plain
//! read-modify-write loses updates, which an atomic, a process-shared robust mutex or
//! a semaphore fix; a ring in shared memory moves data without a kernel copy.
//!
//! Chapter: book/src/06-shm.md

mod args; // the flags, and the peer's command line
mod children; // a start gate, a spin-wait with a deadline, reaping with a deadline
mod copies; // 1. a private copy against a MAP_SHARED mapping
mod counting; // the counters in shared memory and the processes that count
mod fixes; // 4. an atomic, a process-shared mutex, a semaphore
mod lost_updates; // 3. a plain read-modify-write loses updates
mod named; // 2. named POSIX shared memory, opened by name after exec
mod ring; // 6. zero-copy: a ring in shared memory against a pipe
mod robust; // 5. a robust mutex survives a holder killed while holding it

use clap::Parser;
use proclab::Lab;

fn main() {
    let args = args::Args::parse();
    if let Some(name) = &args.peer {
        named::peer(name, args.common.json); // the exec'd process: never returns
    }
    let mut lab = Lab::start(
        "shm",
        "a MAP_SHARED mapping (anonymous or named with shm_open) is one memory for \
         several processes; a plain read-modify-write on it loses updates, and an \
         atomic, a robust process-shared mutex or a semaphore makes it exact",
        &args.common,
    );
    lab.section("1. Copies versus sharing");
    copies::run(&mut lab);
    lab.section("2. Named POSIX shared memory, opened by name after exec");
    named::run(&mut lab, &args);
    let counters = counting::Counters::map(); // shared by sections 3 to 5
    lab.section("3. Lost updates: a plain read-modify-write");
    let plain = lost_updates::run(&mut lab, &args, counters);
    lab.section("4. Three fixes: atomic, process-shared mutex, semaphore");
    fixes::run(&mut lab, &args, counters, plain);
    lab.section("5. A robust mutex survives a holder killed while holding it");
    robust::run(&mut lab, counters, args.procs as u64 * args.iters);
    counting::Counters::unmap(counters);
    lab.section("6. Zero-copy: a ring in shared memory against a pipe");
    ring::run(&mut lab, &args);
    lab.finish()
}
