//! Section 5: a process killed while it holds a mutex never unlocks it. A robust
//! mutex's next locker gets it anyway, with EOWNERDEAD: it must repair the data and
//! call `pthread_mutex_consistent`, and the mutex works again.

use crate::children::{reap, LIMIT};
use crate::counting::Counters;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpid, pipe, write, ForkResult};
use proclab::fdio::read_full_by;
use proclab::{check, cleanup, flush_stdout, lifeline, observe, say};
use proclab::{Deadline, Lab, OrDie};
use std::ptr::{self, addr_of_mut};
use std::time::Duration;

/// How long a lock waits: a dead holder's non-robust lock is never released.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// `c` holds the mutex initialised in section 4; `repaired` is the value that the
/// data it protects should hold.
pub fn run(lab: &mut Lab, c: *mut Counters, repaired: u64) {
    let parent = getpid().as_raw();
    let (ready_rx, ready_tx) = pipe().or_die("pipe");
    // SAFETY: c points to the live mapping; this only takes a field's address.
    let m = unsafe { addr_of_mut!((*c).mutex) };
    // SAFETY: as above.
    let data = unsafe { addr_of_mut!((*c).locked) };
    flush_stdout();
    // ANCHOR: holder
    // SAFETY: the child only locks the shared mutex, writes, pauses and _exits.
    let holder = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => unsafe {
            lifeline::die_with_parent(parent);
            libc::pthread_mutex_lock(m); // take the lock...
            ptr::write_volatile(data, u64::MAX); // ...leave the data half-updated
            say!("holding the mutex; waiting to be killed");
            let _ = write(&ready_tx, b"L");
            loop {
                libc::pause(); // and never unlock it
            }
        },
        ForkResult::Parent { child } => child,
    };
    // ANCHOR_END: holder
    drop(ready_tx);
    // ANCHOR: robust
    let by = Deadline::after(LIMIT);
    let held = read_full_by(&ready_rx, &mut [0u8; 1], by) == Ok(1);
    let _ = kill(holder, Signal::SIGKILL); // it dies holding the mutex
    let status = reap(holder);
    let first = timed_lock(m, LOCK_WAIT); // EOWNERDEAD: ours, data maybe broken
    if first == libc::EOWNERDEAD {
        // SAFETY: we hold the mutex: repair the data, then mark the mutex usable.
        unsafe {
            ptr::write_volatile(data, repaired);
            libc::pthread_mutex_consistent(m);
        }
    }
    let owned = first == 0 || first == libc::EOWNERDEAD;
    let (mut unlock, mut second) = (first, first);
    if owned {
        // SAFETY: m is initialised, and we own it.
        unlock = unsafe { libc::pthread_mutex_unlock(m) };
        second = timed_lock(m, LOCK_WAIT); // 0: an ordinary lock again
    }
    // ANCHOR_END: robust
    if second == 0 {
        // SAFETY: we hold it.
        unsafe { libc::pthread_mutex_unlock(m) };
    }
    let name = errno_name(first);
    observe!(
        lab,
        "robust",
        "holder {holder} {status} holding the mutex; the next lock returned {name} \
         ({first_lock}), after pthread_mutex_consistent the next returned \
         {second_lock}",
        holder = holder.as_raw(),
        ppid = parent,
        forked = true,
        sent = "SIGKILL",
        status,
        first_lock = first,
        first_lock_name = &name,
        unlock,
        second_lock = second
    );
    check!(
        lab,
        "robust_eownerdead",
        held && status.signal() == Some(Signal::SIGKILL)
            && first == libc::EOWNERDEAD
            && unlock == 0
            && second == 0,
        "the next locker got EOWNERDEAD, repaired the data, called \
         pthread_mutex_consistent and the mutex worked again"
    );
}

/// Lock with a deadline, so that even a non-robust mutex cannot hang the lab. Returns
/// the pthread result (0, EOWNERDEAD, ETIMEDOUT...).
fn timed_lock(m: *mut libc::pthread_mutex_t, wait: Duration) -> i32 {
    // SAFETY: clock_gettime fills the timespec; m points to an initialised mutex.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts);
        ts.tv_sec += wait.as_secs() as libc::time_t;
        libc::pthread_mutex_timedlock(m, &ts)
    }
}

/// `EOWNERDEAD` for 130; `0` for success.
fn errno_name(code: i32) -> String {
    match code {
        0 => "0".into(),
        other => format!("{:?}", nix::errno::Errno::from_raw(other)),
    }
}
