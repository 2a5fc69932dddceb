//! # shm: shared memory between processes, its races, and three ways to fix them
//!
//! After `fork`, parent and child have separate copies of every ordinary variable; only a
//! mapping made with `MAP_SHARED` is the same memory in both. The lab shows:
//!
//! 1. a private variable written by the child is unchanged in the parent, a
//!    `MAP_SHARED | MAP_ANONYMOUS` mapping made before fork is not;
//! 2. named POSIX shared memory (`shm_open` + `ftruncate` + `mmap`): a process that `exec`ed
//!    (so it inherited no mapping) opens it by name; the entry is in /dev/shm while it exists
//!    and `shm_unlink` removes it;
//! 3. lost updates: N processes, pinned to different CPUs, increment one shared counter with
//!    a plain load and store, and the total comes out short;
//! 4. three fixes, each exact and timed: an atomic `fetch_add`, a process-shared pthread
//!    mutex, a process-shared POSIX semaphore;
//! 5. the mutex is *robust*: its holder is killed with SIGKILL while holding it, the next
//!    locker gets `EOWNERDEAD`, repairs the data, calls `pthread_mutex_consistent` and goes on;
//! 6. zero-copy: a ring of slots in shared memory against a pipe, in the same run.
//!
//! What to look for: the /dev/shm entry and the peer's `/proc/self/maps` before it opened the
//! name; the "lost" column; `EOWNERDEAD` (130) then 0.
//!
//! Caveats: how many updates are lost depends on the CPUs and their load (on one CPU a
//! process is rarely preempted between its load and its store, so few or none are lost);
//! the lab says so when none was lost. Timings are noisy; the benchmarks measure.

use clap::Parser;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::mman::{
    mmap, mmap_anonymous, munmap, shm_open, shm_unlink, MapFlags, ProtFlags,
};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{execv, ftruncate, getpid, pipe, write, ForkResult, Pid};
use proclab::fdio::{read_full, read_full_by, write_all};
use proclab::lifeline::{self, Lifeline};
use proclab::wait::waitpid_by;
use proclab::{cleanup, cpu, flush_stdout, narrate, say, Lab, OrDie};
use proclab::{Deadline, Status, Watchdog};
use std::ffi::CString;
use std::num::NonZeroUsize;
use std::os::fd::OwnedFd;
use std::ptr::{self, addr_of_mut, NonNull};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

mod args; // the flags (--procs, --iters, --mib, --linger-ms), and the peer's command line
mod report; // every observation's fields and words, the tables, the long check texts
mod support; // the start gate, waiting, pinning; section 6's chunks: a pattern, stamped, verified, written, read

use args::Args;
use report::Count;
use support::{spin_until, stamp, verify, wait_until, Gate};

/// How long a child that should end by itself may take (lab time) before it counts as
/// hung: it is then killed, and what it did not do is observed.
const LIMIT: Duration = Duration::from_secs(30);
/// How long a lock may wait for a mutex: a dead holder's non-robust lock is never freed.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Reap `child` within [`LIMIT`]; one that has not ended by then is killed first.
fn reap(child: Pid) -> Status {
    let status = waitpid_by(child, Deadline::after(LIMIT)).unwrap_or_else(|| {
        let _ = kill(child, Signal::SIGKILL);
        Status(waitpid(child, None))
    });
    cleanup::forget(child);
    status
}

/// Everything the counting processes share: one anonymous MAP_SHARED mapping.
#[repr(C)]
struct Counters {
    plain: u64,
    _pad0: [u8; 56],
    atomic: AtomicU64,
    _pad1: [u8; 56],
    locked: u64,        // incremented under the mutex
    sem_counted: u64,   // incremented under the semaphore
    arrived: AtomicU64, // a start barrier: how many counting processes are running
    mutex: libc::pthread_mutex_t,
    sem: libc::sem_t,
    /// The mutex the counting processes lock: `mutex` (tests only: a private copy).
    lock_at: *mut libc::pthread_mutex_t,
}

/// A mutex in each process's private memory: after fork every process has its own copy.
static mut PRIVATE_MUTEX: libc::pthread_mutex_t = libc::PTHREAD_MUTEX_INITIALIZER;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Method {
    Plain,
    Atomic,
    Mutex,
    Semaphore,
}

impl Method {
    const ALL: [Method; 4] =
        [Method::Plain, Method::Atomic, Method::Mutex, Method::Semaphore];

    fn name(self) -> String {
        format!("{self:?}").to_lowercase()
    }
}

const SEG: usize = 4096; // size of the named segment
const MSG_AT: usize = 0; // the creator's message
const ECHO_AT: usize = 256; // what the peer read, copied back
const PEER_AT: usize = 512; // the peer's pid and what its maps showed

fn main() {
    let args = Args::parse();
    if let Some(name) = &args.peer {
        peer(name, args.common.json); // the exec'd process: never returns
    }
    // Tests only: each switch removes one phenomenon, and its check must turn.
    let map_private = proclab::test_removes("map_private");
    let one_process = proclab::test_removes("one_process");
    let mutex_private = proclab::test_removes("mutex_private");
    let not_robust = proclab::test_removes("not_robust");
    let mut lab = Lab::start(
        "shm",
        "a MAP_SHARED mapping (anonymous or named with shm_open) is one memory for several processes; a plain read-modify-write on it loses updates, and an atomic, a robust process-shared mutex or a semaphore makes it exact",
        &args.common,
    );
    let me = getpid();
    let cpus = cpu::allowed();

    lab.section("1. Copies versus sharing");
    // ANCHOR: copies
    let mut private: u64 = 1;
    let len = NonZeroUsize::new(4096).expect("non-zero");
    // SAFETY: a fresh anonymous mapping; nothing else refers to it.
    let shared = unsafe {
        mmap_anonymous(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            if map_private { MapFlags::MAP_PRIVATE } else { MapFlags::MAP_SHARED },
        )
    }
    .or_die("mmap") // MAP_SHARED: the same pages in parent and child after fork
    .cast::<u64>();
    // SAFETY: the mapping is 4096 bytes, aligned, and ours.
    unsafe { shared.write_volatile(1) };
    flush_stdout();
    // SAFETY: the child only stores to memory and _exits.
    let child = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => unsafe {
            lifeline::die_with_parent(me.as_raw());
            ptr::write_volatile(&mut private, 42); // the child's own copy (copy-on-write)
            shared.write_volatile(42); // the one shared page
            libc::_exit(0)
        },
        ForkResult::Parent { child } => child,
    };
    let status = reap(child);
    // SAFETY: reads of the parent's own variable and of the live mapping.
    let (seen_private, seen_shared) =
        unsafe { (ptr::read_volatile(&private), shared.read_volatile()) };
    // ANCHOR_END: copies
    report::copies(&mut lab, child, seen_private, seen_shared, status);
    lab.check(
        "private_stays_private",
        seen_private == 1,
        "an ordinary variable written by the child is unchanged in the parent (each has its own copy)",
    );
    lab.check(
        "map_shared_is_shared",
        seen_shared == 42 && status.code() == Some(0),
        "a MAP_SHARED mapping made before fork is one memory: the parent sees the child's write",
    );
    // SAFETY: no pointer into the mapping is used after this.
    unsafe { munmap(shared.cast(), 4096) }.or_die("munmap");

    lab.section("2. Named POSIX shared memory, opened by name after exec");
    let name = format!("/proclab-shm-{me}-named");
    let path = format!("/dev/shm{name}");
    // The lab unlinks the name on every way out but SIGKILL; a janitor then does it.
    let (janitor_line, janitor_pid) = janitor(&name);
    // ANCHOR: named
    let fd = shm_open(
        name.as_str(),
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
        Mode::S_IRUSR | Mode::S_IWUSR,
    )
    .or_die("shm_open"); // creates /dev/shm/proclab-shm-PID-named
    cleanup::track_shm(&name); // unlinked on every way out
    ftruncate(&fd, SEG as i64).or_die("ftruncate"); // a new segment is 0 bytes long
    let seg = map_segment(&fd, MapFlags::MAP_SHARED);
    let message = format!("hello from {me}");
    // SAFETY: the segment is SEG bytes; the message is shorter than ECHO_AT.
    unsafe {
        ptr::copy_nonoverlapping(message.as_ptr(), seg.add(MSG_AT), message.len())
    };
    // ANCHOR_END: named
    let meta = std::fs::metadata(&path).ok();
    report::entry_exists(&mut lab, &name, &path, meta.as_ref());
    if !lab.stepping() {
        report::linger(args.linger_ms); // only so a person can look: `ls -l /dev/shm`
    }
    let (exe, argv) = args::peer_command(&name, lab.json());
    flush_stdout();
    // ANCHOR: peer_exec
    // SAFETY: the child only calls execv (async-signal-safe) with strings made before fork.
    let peer_pid = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            lifeline::die_with_parent(me.as_raw()); // kept across exec
            let _ = execv(&exe, &argv); // a new program: no mapping of the parent survives exec
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => child,
    };
    let status = reap(peer_pid);
    // ANCHOR_END: peer_exec
    // SAFETY: the segment is SEG bytes, written by the peer before it exited.
    let (echo, peer_seen, maps_before) = unsafe {
        let echo =
            std::slice::from_raw_parts(seg.add(ECHO_AT), message.len()).to_vec();
        let p = seg.add(PEER_AT).cast::<u32>();
        (echo, p.read_volatile(), p.add(1).read_volatile())
    };
    report::peer(
        &mut lab,
        peer_pid,
        peer_seen,
        maps_before,
        &echo,
        &message,
        status,
    );
    lab.check(
        "opened_by_name",
        status.code() == Some(0)
            && echo == message.as_bytes()
            && peer_seen == peer_pid.as_raw() as u32
            && maps_before == 0,
        "a process that inherited no mapping opened the segment by name and shared its bytes both ways",
    );
    // ANCHOR: unlink
    shm_unlink(name.as_str()).or_die("shm_unlink"); // removes the name; the memory lives until the last munmap
    cleanup::forget_shm(&name);
    let gone = !std::path::Path::new(&path).exists();
    // SAFETY: the mapping is still valid after the name is gone.
    let still =
        unsafe { std::slice::from_raw_parts(seg.add(MSG_AT), message.len()) }
            == message.as_bytes();
    // ANCHOR_END: unlink
    // SAFETY: no pointer into the segment is used after this.
    unsafe { munmap(NonNull::new(seg.cast()).expect("mapped"), SEG) }
        .or_die("munmap");
    drop(fd);
    drop(janitor_line); // done: the janitor finds the name gone and exits
    reap(janitor_pid);
    report::entry_unlinked(&mut lab, &name, &path, gone, &message, still);
    lab.check(
        "unlink_removes_entry",
        meta.is_some() && gone && still,
        "the /dev/shm entry existed while the segment was named and shm_unlink removed it (mapped memory stays until munmap)",
    );

    lab.section("3. Lost updates: a plain read-modify-write");
    let size = std::mem::size_of::<Counters>();
    let c = map_shared(size).cast::<Counters>(); // zero-filled: every counter starts at 0
                                                 // SAFETY: c points to the fresh mapping; this only takes a field's address.
    let shared_mutex = unsafe { addr_of_mut!((*c).mutex) };
    init_mutex(shared_mutex, !not_robust);
    // Tests only: each counting process locks its own copy of a mutex (private memory).
    let lock_at =
        if mutex_private { addr_of_mut!(PRIVATE_MUTEX) } else { shared_mutex };
    // SAFETY: the parent alone runs; no child is forked yet.
    unsafe { (*c).lock_at = lock_at };
    // SAFETY: the semaphore lives in memory shared by the processes (pshared = 1), value 1.
    Errno::result(unsafe { libc::sem_init(addr_of_mut!((*c).sem), 1, 1) })
        .or_die("sem_init");
    let expected = args.procs as u64 * args.iters;
    let mut counts = Vec::new();
    for method in Method::ALL {
        // Tests only: one process does all the plain counting, so none can race it.
        let (procs, iters) = match method {
            Method::Plain if one_process => (1, args.procs as u64 * args.iters),
            _ => (args.procs as usize, args.iters),
        };
        let (took, all_exited) = count(me, c, method, procs, iters, &cpus);
        // SAFETY: every child has been reaped; the parent alone reads the counters.
        let actual = unsafe {
            match method {
                Method::Plain => ptr::read_volatile(addr_of_mut!((*c).plain)),
                Method::Atomic => (*c).atomic.load(Ordering::SeqCst),
                Method::Mutex => ptr::read_volatile(addr_of_mut!((*c).locked)),
                Method::Semaphore => {
                    ptr::read_volatile(addr_of_mut!((*c).sem_counted))
                }
            }
        };
        let counted = Count::new(method, procs, iters, actual, took, all_exited);
        report::counter(&mut lab, &counted);
        if method == Method::Plain {
            let lost = counted.lost();
            lab.check(
                "updates_lost",
                lost > 0 && all_exited,
                report::lost_text(&counted, cpus.len()),
            );
            lab.section("4. Three fixes: atomic, process-shared mutex, semaphore");
        }
        counts.push(counted);
    }
    report::counters_table(&mut lab, &counts);
    for fix in counts.iter().filter(|c| c.method != Method::Plain) {
        let m = fix.method.name();
        lab.check(
            &format!("{m}_exact"),
            fix.actual == expected && fix.all_exited,
            format_args!(
                "with {m}, every one of the {expected} increments counted"
            ),
        );
    }

    lab.section("5. A robust mutex survives a holder killed while holding it");
    let (ready_rx, ready_tx) = pipe().or_die("pipe");
    let mut ready = [0u8; 1];
    // SAFETY: c points to the live Counters mapping; this only takes a field's address.
    let m = unsafe { addr_of_mut!((*c).mutex) };
    flush_stdout();
    // ANCHOR: robust
    // SAFETY: the child only locks the process-shared mutex, writes, pauses and _exits.
    let holder = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => unsafe {
            lifeline::die_with_parent(me.as_raw());
            libc::pthread_mutex_lock(m); // take the lock...
            ptr::write_volatile(addr_of_mut!((*c).locked), u64::MAX); // ...leave the data half-updated
            say!("holding the mutex; waiting to be killed");
            let _ = write(&ready_tx, b"L");
            loop {
                libc::pause(); // and never unlock it
            }
        },
        ForkResult::Parent { child } => child,
    };
    drop(ready_tx);
    let held = read_full_by(&ready_rx, &mut ready, Deadline::after(LIMIT)) == Ok(1);
    let _ = kill(holder, Signal::SIGKILL); // dies holding it
    let status = reap(holder);
    let first = timed_lock(m, LOCK_WAIT); // EOWNERDEAD: you own it, the data may be broken
    if first == libc::EOWNERDEAD {
        // SAFETY: we hold the mutex: repair the data, then mark the mutex usable again.
        unsafe { ptr::write_volatile(addr_of_mut!((*c).locked), expected) };
        // SAFETY: m is an initialised robust mutex that we hold.
        unsafe { libc::pthread_mutex_consistent(m) };
    }
    let owned = first == 0 || first == libc::EOWNERDEAD;
    // SAFETY: m is initialised, and unlocked only by its owner (us, if `owned`).
    let unlocked =
        if owned { unsafe { libc::pthread_mutex_unlock(m) } } else { first };
    let second = if owned { timed_lock(m, LOCK_WAIT) } else { first }; // 0: usable again
    if second == 0 {
        // SAFETY: as above; we hold it.
        unsafe { libc::pthread_mutex_unlock(m) };
    }
    // ANCHOR_END: robust
    report::robust(&mut lab, holder, status, first, unlocked, second);
    lab.check(
        "robust_eownerdead",
        held && status.signal() == Some(Signal::SIGKILL)
            && first == libc::EOWNERDEAD
            && unlocked == 0
            && second == 0,
        "the next locker got EOWNERDEAD, repaired the data, called pthread_mutex_consistent and the mutex worked again",
    );
    // SAFETY: no process uses the semaphore or the mutex any more.
    unsafe {
        libc::sem_destroy(addr_of_mut!((*c).sem));
        libc::pthread_mutex_destroy(m);
        munmap(NonNull::new(c.cast()).expect("mapped"), size).or_die("munmap");
    }

    lab.section("6. Zero-copy: a ring in shared memory against a pipe");
    let total = (args.mib as usize) << 20;
    // Both processes on one CPU, as in the benchmark's `same_cpu`: on a busy machine a
    // cross-CPU hand-off depends on what else runs there. The fastest of 3 runs each:
    // other programs can only add time.
    let _ = cpu::pin(cpus[0]); // the child inherits the affinity across fork
    let mut rings: Vec<_> = (0..3).map(|_| ring_transfer(me, total)).collect();
    let mut pipes: Vec<_> = (0..3).map(|_| pipe_transfer(me, total)).collect();
    let _ = cpu::unpin();
    rings.sort_by_key(|r| (std::cmp::Reverse(r.0), r.1));
    pipes.sort_by_key(|r| (std::cmp::Reverse(r.0), r.1));
    let ((shm_ok, shm_time), (pipe_ok, pipe_time)) = (rings[0], pipes[0]);
    report::zero_copy(
        &mut lab,
        total,
        CHUNK,
        cpus[0],
        (shm_ok, shm_time),
        (pipe_ok, pipe_time),
    );
    lab.check(
        "zero_copy_intact",
        rings.iter().chain(&pipes).all(|r| r.0 == total / CHUNK),
        "every chunk arrived intact through the ring and through the pipe",
    );

    lab.finish()
}

/// Map a named segment's SEG bytes (`flags`: MAP_SHARED). Returns its first byte.
fn map_segment(fd: &OwnedFd, flags: MapFlags) -> *mut u8 {
    let len = NonZeroUsize::new(SEG).expect("non-zero");
    // SAFETY: a new mapping of a file we opened; nothing else refers to it yet.
    unsafe {
        mmap(None, len, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE, flags, fd, 0)
    }
    .or_die("mmap")
    .cast::<u8>()
    .as_ptr()
}

/// A fresh zero-filled `MAP_SHARED | MAP_ANONYMOUS` mapping of `len` bytes, inherited by
/// every child forked after it. Returns its first byte.
fn map_shared(len: usize) -> *mut u8 {
    let len = NonZeroUsize::new(len).expect("non-zero");
    // SAFETY: a fresh anonymous mapping; nothing else refers to it.
    unsafe {
        mmap_anonymous(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
        )
    }
    .or_die("mmap")
    .cast::<u8>()
    .as_ptr()
}

// ANCHOR: peer
/// The exec'd peer: a fresh program that inherited no mapping. It opens the segment by name,
/// reads the creator's message and writes it back with its pid.
fn peer(name: &str, quiet: bool) -> ! {
    narrate::set_quiet(quiet);
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let before =
        maps.lines().filter(|l| l.contains(name.trim_start_matches('/'))).count()
            as u32;
    let fd = shm_open(name, OFlag::O_RDWR, Mode::empty()).or_die("shm_open (peer)"); // by name, no O_CREAT
                                                                                     // Tests only: a private mapping, whose writes the creator never sees.
    let private = proclab::test_removes("peer_map_private");
    let flags = if private { MapFlags::MAP_PRIVATE } else { MapFlags::MAP_SHARED };
    let seg = map_segment(&fd, flags);
    // SAFETY: the segment is SEG bytes long; the creator wrote a message shorter than ECHO_AT.
    unsafe {
        let msg = std::slice::from_raw_parts(seg.add(MSG_AT), ECHO_AT);
        let len = msg.iter().position(|&b| b == 0).unwrap_or(0);
        say!(
            "opened {name} by name; it says {:?}",
            std::str::from_utf8(&msg[..len]).unwrap_or("?")
        );
        ptr::copy_nonoverlapping(seg.add(MSG_AT), seg.add(ECHO_AT), len);
        let p = seg.add(PEER_AT).cast::<u32>();
        p.write_volatile(std::process::id());
        p.add(1).write_volatile(before);
    }
    std::process::exit(0)
}
// ANCHOR_END: peer

/// A janitor for the named segment `name`: a child that holds a lifeline to the lab and,
/// once the lab is gone (even SIGKILLed, when no handler of its own runs) or lets go of
/// the lifeline, unlinks the name and exits. Fork it before `shm_open`.
fn janitor(name: &str) -> (Lifeline, Pid) {
    let line = Lifeline::new().or_die("pipe2");
    let cname = CString::new(name).expect("no NUL");
    flush_stdout();
    // SAFETY: the child only closes, polls, unlinks and _exits (async-signal-safe).
    let pid = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            line.hold();
            while !line.sleep_ms(-1) {} // until the lab is gone or done
                                        // SAFETY: a valid C string; ENOENT (already unlinked) is fine.
            unsafe {
                libc::shm_unlink(cname.as_ptr());
                libc::_exit(0)
            }
        }
        ForkResult::Parent { child } => child,
    };
    (line, pid)
}

/// A process-shared, robust pthread mutex, initialised in place in the shared mapping
/// (tests only: not robust).
fn init_mutex(m: *mut libc::pthread_mutex_t, robust: bool) {
    // ANCHOR: mutex_init
    // SAFETY: attr is initialised before use; the mutex lives in the shared mapping.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        libc::pthread_mutexattr_init(&mut attr);
        libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED); // usable across processes
        if robust {
            libc::pthread_mutexattr_setrobust(
                &mut attr,
                libc::PTHREAD_MUTEX_ROBUST,
            ); // survives a dead holder
        }
        let r = libc::pthread_mutex_init(m, &attr);
        libc::pthread_mutexattr_destroy(&mut attr);
        if r != 0 {
            proclab::die("pthread_mutex_init", Errno::from_raw(r));
        }
    }
    // ANCHOR_END: mutex_init
}

/// Lock with a deadline, so that even a non-robust mutex cannot hang the lab. Returns the
/// pthread result (0, EOWNERDEAD, ETIMEDOUT...).
fn timed_lock(m: *mut libc::pthread_mutex_t, wait: Duration) -> i32 {
    // SAFETY: clock_gettime fills the timespec; m points to an initialised mutex.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts);
        ts.tv_sec += wait.as_secs() as libc::time_t;
        libc::pthread_mutex_timedlock(m, &ts)
    }
}

/// `procs` processes, process i pinned to CPU i mod cpus, all released at once, each add
/// `iters` to the counter of `method`. Returns the time from the release to the last exit.
fn count(
    me: Pid,
    c: *mut Counters,
    method: Method,
    procs: usize,
    iters: u64,
    cpus: &[usize],
) -> (Duration, bool) {
    // SAFETY: no child is running yet; the parent alone touches the mapping.
    unsafe { (*c).arrived.store(0, Ordering::SeqCst) };
    let gate = Gate::new(); // a pipe: opening the gate (closing its write end) releases them all
    let mut kids = Vec::new();
    for i in 0..procs {
        flush_stdout();
        // SAFETY: the child pins itself, reads the gate, works on the shared mapping (no heap,
        // no locks other than the process-shared ones in the mapping) and _exits.
        match unsafe { cleanup::fork_tracked() } {
            ForkResult::Child => unsafe {
                lifeline::die_with_parent(me.as_raw());
                let _ = cpu::pin(cpus[i % cpus.len()]); // a CPU of its own where possible
                gate.wait(); // EOF when the parent opens the gate
                (*c).arrived.fetch_add(1, Ordering::SeqCst); // then wait until all are running,
                wait_until(|| (*c).arrived.load(Ordering::SeqCst) >= procs as u64); // so they overlap
                increment(c, method, iters);
                libc::_exit(0)
            },
            ForkResult::Parent { child } => {
                kids.push(child);
            }
        }
    }
    let sw = gate.open(); // go
                          // A generous bound: a sibling that died before the barrier would stall the others.
    let per_op = Duration::from_micros(5) * procs as u32;
    let by = Deadline::after(LIMIT + per_op * iters.min(u32::MAX as u64) as u32);
    let mut all_exited = true;
    for &k in &kids {
        let st = waitpid_by(k, by).unwrap_or(Status(Err(Errno::ETIMEDOUT)));
        all_exited &= st.code() == Some(0);
    }
    let took = sw.elapsed();
    for &k in &kids {
        let _ = kill(k, Signal::SIGKILL); // only those that timed out are still there
        let _ = waitpid(k, None);
        cleanup::forget(k);
    }
    (took, all_exited)
}

// ANCHOR: increment
/// One process's share of the counting: `iters` increments of the counter of `method`.
///
/// # Safety
/// `c` points to the shared, initialised Counters.
unsafe fn increment(c: *mut Counters, method: Method, iters: u64) {
    let plain = addr_of_mut!((*c).plain);
    let locked = addr_of_mut!((*c).locked);
    let sem_counted = addr_of_mut!((*c).sem_counted);
    for _ in 0..iters {
        match method {
            Method::Plain => {
                let v = ptr::read_volatile(plain); // load...
                ptr::write_volatile(plain, v + 1); // ...store: another CPU may have stored in between
            }
            Method::Atomic => {
                (*c).atomic.fetch_add(1, Ordering::Relaxed); // one indivisible lock xadd
            }
            Method::Mutex => {
                libc::pthread_mutex_lock((*c).lock_at); // futex: sleeps if taken
                ptr::write_volatile(locked, ptr::read_volatile(locked) + 1);
                libc::pthread_mutex_unlock((*c).lock_at);
            }
            Method::Semaphore => {
                while libc::sem_wait(addr_of_mut!((*c).sem)) != 0 {} // P: retried on EINTR
                ptr::write_volatile(
                    sem_counted,
                    ptr::read_volatile(sem_counted) + 1,
                );
                libc::sem_post(addr_of_mut!((*c).sem)); // V
            }
        }
    }
}
// ANCHOR_END: increment

const CHUNK: usize = 64 << 10; // bytes per slot and per pipe write
const SLOTS: usize = 8; // slots in the ring

/// The ring's header, at the start of its mapping; the slots follow at offset 4096.
#[repr(C)]
struct RingHead {
    head: AtomicU64, // chunks published by the producer
    _pad: [u8; 56],
    tail: AtomicU64, // chunks consumed by the consumer
}

/// Move `total` bytes from a child to the parent through a ring of SLOTS chunks in a shared
/// mapping: the producer writes each chunk straight into a slot and publishes it; the
/// consumer checks it in place. Returns (chunks verified, time).
fn ring_transfer(me: Pid, total: usize) -> (usize, Duration) {
    let chunks = total / CHUNK;
    let len = 4096 + SLOTS * CHUNK;
    let base = map_shared(len); // head and tail start at 0
    let ring = base.cast::<RingHead>();
    let mut src = proclab::bytes::pattern(CHUNK, 6);
    let gate = Gate::new();
    flush_stdout();
    // ANCHOR: ring
    // SAFETY: the child only uses the shared mapping, a buffer allocated before fork, read and _exit.
    let child = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => unsafe {
            lifeline::die_with_parent(me.as_raw());
            gate.wait(); // until the consumer starts its clock
            for i in 0..chunks as u64 {
                wait_until(|| {
                    i - (*ring).tail.load(Ordering::Acquire) < SLOTS as u64
                }); // a free slot
                let slot = std::slice::from_raw_parts_mut(
                    base.add(4096 + (i as usize % SLOTS) * CHUNK),
                    CHUNK,
                );
                stamp(&mut src, i);
                slot.copy_from_slice(&src); // the only copy: straight into the shared slot
                (*ring).head.store(i + 1, Ordering::Release); // publish it
            }
            libc::_exit(0)
        },
        ForkResult::Parent { child } => child,
    };
    // ANCHOR_END: ring
    // ANCHOR: ring_consumer
    let sw = gate.open(); // release the producer
    let by = Deadline::after(LIMIT); // a producer that stops is not waited for
    let mut ok = 0;
    for i in 0..chunks as u64 {
        // SAFETY: the slot was published (head > i) and is not rewritten until tail passes it.
        unsafe {
            if !spin_until(by, || (*ring).head.load(Ordering::Acquire) > i) {
                break;
            }
            let slot = std::slice::from_raw_parts(
                base.add(4096 + (i as usize % SLOTS) * CHUNK),
                CHUNK,
            );
            ok += verify(slot, &src, i) as usize; // read in place: no copy
            (*ring).tail.store(i + 1, Ordering::Release); // the slot is free again
        }
    }
    let took = sw.elapsed();
    // ANCHOR_END: ring_consumer
    let _ = kill(child, Signal::SIGKILL); // a producer waiting for a slot that never frees
    reap(child);
    // SAFETY: the child is gone and no pointer into the mapping is used after this.
    unsafe { munmap(NonNull::new(base.cast()).expect("mapped"), len) }
        .or_die("munmap");
    (ok, took)
}

/// The same transfer through a pipe: the kernel copies each chunk in, then out.
fn pipe_transfer(me: Pid, total: usize) -> (usize, Duration) {
    let chunks = total / CHUNK;
    let mut src = proclab::bytes::pattern(CHUNK, 6);
    let mut dst = vec![0u8; CHUNK];
    let (rx, tx) = pipe().or_die("pipe");
    let gate = Gate::new();
    flush_stdout();
    // SAFETY: the child only reads, writes (a buffer allocated before fork) and _exits.
    let child = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            lifeline::die_with_parent(me.as_raw());
            drop(rx);
            gate.wait();
            for i in 0..chunks as u64 {
                stamp(&mut src, i);
                if write_all(&tx, &src).is_err() {
                    unsafe { libc::_exit(1) }
                }
            }
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => child,
    };
    drop(tx);
    // A writer that stops would block the reads: kill it at the limit.
    let dog = Watchdog::arm(LIMIT, move || {
        let _ = kill(child, Signal::SIGKILL);
    });
    let sw = gate.open();
    let mut ok = 0;
    for i in 0..chunks as u64 {
        if read_full(&rx, &mut dst) != Ok(CHUNK) {
            break;
        }
        ok += verify(&dst, &src, i) as usize;
    }
    let took = sw.elapsed();
    dog.disarm();
    reap(child);
    (ok, took)
}
