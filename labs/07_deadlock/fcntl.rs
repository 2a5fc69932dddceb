//! Scenario 3, second part: the same two-process cycle with `fcntl` record locks. Before
//! it puts a process to sleep, the kernel follows the chain of blocked lock owners, and it
//! refuses the request that would close a cycle with EDEADLK.

use crate::lockfiles::LockFiles;
use crate::processes::{fork_lock_child, second_order, Kind};
use crate::procview::proc_locks;
use crate::watch::reap_all;
use crate::Args;
use proclab::{check, observe, plain, procfacts, Deadline, Lab};

/// In the lab: child 1 waits first, then child 2 asks for the lock that closes the
/// cycle. True if the kernel refused child 2 with EDEADLK and child 1 then finished.
pub fn run(lab: &mut Lab, args: &Args, files: &LockFiles) -> bool {
    plain!("-- fcntl record locks: the same two-process cycle, but the kernel checks for it --");
    let ab = [files.paths[0].as_c_str(), files.paths[1].as_c_str()];
    let (c1, g1) = fork_lock_child(Kind::Fcntl, ab);
    let (c2, g2) = fork_lock_child(Kind::Fcntl, second_order(files));
    let until = Deadline::after(args.deadline()); // lab time
    let ready = g1.ready_by(until) && g2.ready_by(until);
    let lock_b = files.files[1].0;
    // ANCHOR: edeadlk
    g1.go(); // child 1 asks for lock-b and sleeps...
    let waits = || {
        let locks = proc_locks();
        let asks = locks
            .iter()
            .any(|l| l.blocked && l.pid == c1.as_raw() && l.inode == lock_b);
        (asks && procfacts::state(c1.as_raw()) == Some('S')).then_some(())
    };
    let c1_waits = procfacts::poll_until(until.remaining(), waits).is_some();
    g2.go(); // ...then child 2 asks for lock-a, which would close the cycle
    let ([st2, st1], fired) = reap_all([c2, c1], args.deadline());
    // ANCHOR_END: edeadlk
    let errno = st2.code().unwrap_or(-1); // a lock child exits with the errno
    observe!(lab, "edeadlk",
        "child {c1} asleep on lock-b first: {waiter_was_blocked}; child {c2} then asked for lock-a and {refused_status} (EDEADLK = 35); child {c1} {waiter_status}",
        refused_status = st2, waiter_status = st1, refused = c2.as_raw(), waiter = c1.as_raw(),
        errno, waiter_was_blocked = c1_waits);
    check!(lab, "fcntl_edeadlk",
        ready && c1_waits && errno == libc::EDEADLK && st1.code() == Some(0) && !fired,
        "fcntl: the kernel found the cycle itself and refused the request that would close it with EDEADLK")
}
