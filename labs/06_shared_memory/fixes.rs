//! Section 4: three ways to make the count exact: an atomic `fetch_add` (one
//! indivisible instruction), a pthread mutex that lives in the shared mapping and is
//! told it is shared between processes (and robust), and a POSIX semaphore likewise.

use crate::args::Args;
use crate::counting::{count, Count, Counters};
use nix::errno::Errno;
use proclab::measure::fmt_duration;
use proclab::{check, Lab, OrDie};
use std::ptr::{self, addr_of_mut};
use std::sync::atomic::Ordering;

/// A mutex in each process's private memory: after fork each has its own copy.
static mut PRIVATE_MUTEX: libc::pthread_mutex_t = libc::PTHREAD_MUTEX_INITIALIZER;

pub fn run(lab: &mut Lab, args: &Args, c: *mut Counters, plain: Count) {
    // Tests only: a mutex that is not robust (section 5), one in private memory.
    let robust = !proclab::test_removes("not_robust");
    let private = proclab::test_removes("mutex_private");
    // Tests only: the mutex is left PTHREAD_PROCESS_PRIVATE (the chapter says why a
    // robust one still works on glibc, and a non-robust one does not).
    let pshared = match proclab::test_removes("process_private_mutex") {
        true => libc::PTHREAD_PROCESS_PRIVATE,
        false => libc::PTHREAD_PROCESS_SHARED,
    };
    // SAFETY: c points to the live mapping; this only takes a field's address.
    let shared = unsafe { addr_of_mut!((*c).mutex) };
    init_mutex(shared, pshared, robust);
    // SAFETY: no child runs yet; the semaphore lives in the shared mapping.
    unsafe {
        (*c).lock_at = if private { addr_of_mut!(PRIVATE_MUTEX) } else { shared };
        // pshared = 1: usable between processes; value 1: a lock.
        Errno::result(libc::sem_init(addr_of_mut!((*c).sem), 1, 1))
            .or_die("sem_init");
    }
    let each = (args.procs as usize, args.iters);
    // SAFETY: read once every counting process has been reaped.
    let atomic = count(lab, c, "atomic", each, by_atomic, || unsafe {
        (*c).atomic.load(Ordering::SeqCst)
    });
    // SAFETY: as above.
    let mutex = count(lab, c, "mutex", each, by_mutex, || unsafe {
        ptr::read_volatile(addr_of_mut!((*c).locked))
    });
    // SAFETY: as above.
    let semaphore = count(lab, c, "semaphore", each, by_semaphore, || unsafe {
        ptr::read_volatile(addr_of_mut!((*c).sem_counted))
    });

    let runs = [plain, atomic, mutex, semaphore];
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let per = r.took / r.expected.max(1) as u32;
            let [time, per] = [r.took, per].map(fmt_duration);
            let (e, a, l) = (r.expected, r.actual, r.lost());
            vec![
                r.method.into(),
                e.to_string(),
                a.to_string(),
                l.to_string(),
                time,
                per,
            ]
        })
        .collect();
    let headers = ["method", "expected", "actual", "lost", "time", "per increment"];
    lab.table("counters", &headers, &rows);
    for fix in &runs[1..] {
        let (m, expected) = (fix.method, fix.expected);
        check!(
            lab,
            &format!("{m}_exact"),
            fix.actual == expected && fix.all_exited,
            "with {m}, every one of the {expected} increments counted"
        );
    }
}

// ANCHOR: atomic
/// `iters` increments, each one indivisible instruction (`lock xadd` on x86).
unsafe fn by_atomic(c: *mut Counters, iters: u64) {
    for _ in 0..iters {
        (*c).atomic.fetch_add(1, Ordering::Relaxed);
    }
}
// ANCHOR_END: atomic

// ANCHOR: locks
/// `iters` plain increments, each under the process-shared mutex.
unsafe fn by_mutex(c: *mut Counters, iters: u64) {
    let n = addr_of_mut!((*c).locked);
    for _ in 0..iters {
        libc::pthread_mutex_lock((*c).lock_at); // a futex: sleeps while taken
        ptr::write_volatile(n, ptr::read_volatile(n) + 1);
        libc::pthread_mutex_unlock((*c).lock_at);
    }
}

/// `iters` plain increments, each between P (sem_wait) and V (sem_post).
unsafe fn by_semaphore(c: *mut Counters, iters: u64) {
    let (n, sem) = (addr_of_mut!((*c).sem_counted), addr_of_mut!((*c).sem));
    for _ in 0..iters {
        while libc::sem_wait(sem) != 0 {} // again on EINTR
        ptr::write_volatile(n, ptr::read_volatile(n) + 1);
        libc::sem_post(sem);
    }
}
// ANCHOR_END: locks

/// A process-shared (`pshared`), robust pthread mutex, initialised in place in the
/// shared mapping (tests only: process-private, or not robust).
fn init_mutex(m: *mut libc::pthread_mutex_t, pshared: i32, robust: bool) {
    // ANCHOR: mutex_init
    // SAFETY: attr is initialised before use; the mutex is in the shared mapping.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        libc::pthread_mutexattr_init(&mut attr);
        // PTHREAD_PROCESS_SHARED: usable across processes (its futex word is in
        // shared memory, and a waiter is woken whichever process it is in):
        libc::pthread_mutexattr_setpshared(&mut attr, pshared);
        if robust {
            // A holder's death is reported to the next locker, not a hang:
            libc::pthread_mutexattr_setrobust(
                &mut attr,
                libc::PTHREAD_MUTEX_ROBUST,
            );
        }
        let r = libc::pthread_mutex_init(m, &attr);
        libc::pthread_mutexattr_destroy(&mut attr);
        if r != 0 {
            proclab::die("pthread_mutex_init", Errno::from_raw(r));
        }
    }
    // ANCHOR_END: mutex_init
}
