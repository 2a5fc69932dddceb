//! Threads versus processes, measured: the same work done the thread way and the process way.
//!
//! Groups (run one with `cargo bench -- spawn`; the book quotes these ids):
//!
//! - `spawn`: start a worker that does nothing and wait for it: `thread_spawn_join`
//!   (std), `pthread_create_join` (libc, like the C loop), `fork_exit_wait` (the child only `_exit`s), `vfork_true_wait` (clone with CLONE_VM |
//!   CLONE_VFORK, then execve), `fork_exec_true_wait`, `posix_spawn_true_wait`,
//!   `command_status` (`std::process::Command::status`), all of `/bin/true`.
//! - `roundtrip`: one byte there and back: `channel_rtt_*` (crossbeam, two threads),
//!   `pipe_rtt_*`, `socketpair_rtt_*` and `futex_rtt_*` (a flag in shared memory and
//!   futex wake-ups) between two processes; `_same_cpu` pins both sides on CPU 0,
//!   `_cross_cpu` puts them on CPUs 0 and 1.
//! - `bulk`: 64 MiB moved: `memcpy_64MiB` (the physical limit), `channel_vec_64MiB` (a `Vec`
//!   sent to another thread: a pointer move), `pipe_bw_*`, `socketpair_bw_cross_cpu`,
//!   `shm_bw_cross_cpu` (written into a shared mapping by a child, read in place).
//! - `compute`: the same CPU-bound job (`tvp::job`) done `sequential`ly, with
//!   `rayon`, with `scoped_threads` and with forked `processes` that return their part
//!   through shared memory, for job sizes from 2^16 to 2^26 elements.
//!
//! Ids whose function name equals a figure of `../shared/reference/refbench.c` are compared
//! with it by `cargo run --release --bin lab -- benchmarks`.
//!
//! The `spawn` figures are per-iteration medians (each iteration timed alone, like
//! refbench.c does), so that one preemption on a shared machine does not move them; the
//! other groups are criterion's usual batched timings.
//!
//! Each group sets its own warm-up, measurement time and sample size so a full `cargo bench`
//! stays short; `--warm-up-time`, `--measurement-time` and `--sample-size` given on the
//! command line take precedence (criterion's own rule is the other way round).

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion,
    SamplingMode, Throughput,
};
#[allow(unused_imports)] // its unit tests are compiled out here
#[path = "../labs/08_threads_vs_processes/tvp.rs"]
mod tvp;
use std::ffi::CString;
use std::hint::black_box;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tvp::{job, part};

/// Apply a group's timing unless the command line set it.
fn tune(
    g: &mut BenchmarkGroup<'_, WallTime>,
    warm_ms: u64,
    measure_ms: u64,
    samples: usize,
) {
    let given = |flag: &str| std::env::args().any(|a| a == flag);
    if !given("--warm-up-time") {
        g.warm_up_time(Duration::from_millis(warm_ms));
    }
    if !given("--measurement-time") {
        g.measurement_time(Duration::from_millis(measure_ms));
    }
    if !given("--sample-size") {
        g.sample_size(samples);
    }
    if !given("--nresamples") {
        g.nresamples(10_000); // the bootstrap's default 100 000 costs more CPU than these benches
    }
}

// ---------------------------------------------------------------- raw helpers

/// Time `iters` runs of `f` one by one and return `iters` x their median: criterion then
/// sees the per-iteration median, the statistic `refbench.c` reports, instead of a mean
/// that a single 5 ms preemption on a shared machine drags up. Used for the `spawn` group,
/// whose figures are compared with the C loop.
fn median_of_each(iters: u64, mut f: impl FnMut()) -> Duration {
    let mut v: Vec<Duration> = Vec::with_capacity(iters as usize);
    for _ in 0..iters {
        let t = Instant::now();
        f();
        v.push(t.elapsed());
    }
    v.sort_unstable();
    v[v.len() / 2] * iters as u32
}

extern "C" {
    static environ: *const *const libc::c_char;
}

/// `/bin/true` as execve wants it, built before any fork (no allocation after fork).
struct TrueProgram {
    path: CString,
    argv: [*const libc::c_char; 2],
    _arg0: CString,
}

impl TrueProgram {
    fn new() -> Box<TrueProgram> {
        let path = CString::new("/bin/true").unwrap();
        let arg0 = CString::new("true").unwrap();
        let argv = [arg0.as_ptr(), ptr::null()];
        Box::new(TrueProgram { path, argv, _arg0: arg0 })
    }
}

fn fork_or_panic() -> libc::pid_t {
    // SAFETY: the callers' children only use async-signal-safe calls and leave with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    pid
}

fn wait_ok(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: plain system call on our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        r == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child {pid} status {status:#x}"
    );
}

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe().expect("pipe")
}

fn read_fd(fd: i32, buf: &mut [u8]) -> isize {
    // SAFETY: buf is valid for buf.len() bytes.
    unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }
}

fn write_fd(fd: i32, buf: &[u8]) -> isize {
    // SAFETY: buf is valid for buf.len() bytes.
    unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) }
}

fn read_exact_fd(fd: i32, buf: &mut [u8]) -> bool {
    let mut got = 0;
    while got < buf.len() {
        let n = read_fd(fd, &mut buf[got..]);
        if n <= 0 {
            return false;
        }
        got += n as usize;
    }
    true
}

fn write_all_fd(fd: i32, buf: &[u8]) -> bool {
    let mut sent = 0;
    while sent < buf.len() {
        let n = write_fd(fd, &buf[sent..]);
        if n <= 0 {
            return false;
        }
        sent += n as usize;
    }
    true
}

fn child_exit(ok: bool) -> ! {
    // SAFETY: _exit is async-signal-safe; the child never returns into criterion.
    unsafe { libc::_exit(if ok { 0 } else { 1 }) }
}

/// An anonymous MAP_SHARED mapping: shared with children forked after it was made.
struct SharedMap {
    ptr: *mut u8,
    len: usize,
}

impl SharedMap {
    fn new(len: usize) -> SharedMap {
        // SAFETY: a fresh anonymous mapping; no existing memory is touched.
        let ptr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(
            ptr != libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        SharedMap { ptr: ptr.cast(), len }
    }
    fn word(&self, i: usize) -> &AtomicU32 {
        assert!((i + 1) * 4 <= self.len);
        // SAFETY: in bounds, 4-aligned (page-aligned base), and only ever accessed atomically.
        unsafe { &*(self.ptr.add(i * 4) as *const AtomicU32) }
    }
    fn u64s(&self) -> *mut u64 {
        self.ptr.cast()
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT on a valid shared word; returns at once if it no longer holds
    // `expected`. Not FUTEX_PRIVATE: the word is shared between processes.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ptr::null::<libc::timespec>(),
        )
    };
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE of at most one waiter on a valid shared word.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1) };
}

/// Where the two sides of a round trip or a transfer run.
#[derive(Clone, Copy)]
enum Placement {
    Unpinned,
    SameCpu,
    CrossCpu,
}

impl Placement {
    fn parent_cpu(self) -> Option<usize> {
        match self {
            Placement::Unpinned => None,
            _ => Some(0),
        }
    }
    fn child_cpu(self) -> Option<usize> {
        match self {
            Placement::Unpinned => None,
            Placement::SameCpu => Some(0),
            Placement::CrossCpu => Some(1),
        }
    }
    fn pin_parent(self) {
        if let Some(c) = self.parent_cpu() {
            proclab::cpu::pin(c).expect("sched_setaffinity");
        }
    }
    fn pin_child(self) {
        if let Some(c) = self.child_cpu() {
            let _ = proclab::cpu::pin(c);
        }
    }
    fn unpin(self) {
        if self.parent_cpu().is_some() {
            proclab::cpu::unpin().expect("sched_setaffinity");
        }
    }
}

// ---------------------------------------------------------------- spawn

fn spawn(c: &mut Criterion) {
    let mut g = c.benchmark_group("spawn");
    tune(&mut g, 300, 1200, 30);

    g.bench_function("thread_spawn_join", |b| {
        b.iter_custom(|iters| {
            median_of_each(iters, || {
                std::thread::spawn(|| black_box(1u32)).join().unwrap();
            })
        })
    });

    // The same with pthread_create and default attributes, as the C loop does: std's
    // spawn also sets up a guard-paged signal stack per thread (mmap, mprotect,
    // sigaltstack, munmap), which this leaves out.
    g.bench_function("pthread_create_join", |b| {
        extern "C" fn noop(arg: *mut libc::c_void) -> *mut libc::c_void {
            arg
        }
        b.iter_custom(|iters| {
            median_of_each(iters, || {
                let mut t: libc::pthread_t = 0;
                // SAFETY: default attributes; `noop` touches nothing; joined right away.
                let r = unsafe {
                    libc::pthread_create(&mut t, ptr::null(), noop, ptr::null_mut())
                };
                assert_eq!(r, 0, "pthread_create");
                // SAFETY: t is a joinable thread we created.
                let r = unsafe { libc::pthread_join(t, ptr::null_mut()) };
                assert_eq!(r, 0, "pthread_join");
            })
        })
    });

    g.bench_function("fork_exit_wait", |b| {
        b.iter_custom(|iters| {
            median_of_each(iters, || {
                let pid = fork_or_panic(); // copies the page tables, shares every page
                if pid == 0 {
                    child_exit(true); // the child only _exits
                }
                wait_ok(pid);
            })
        })
    });

    let prog = TrueProgram::new();
    g.bench_function("vfork_true_wait", |b| {
        // clone(CLONE_VM | CLONE_VFORK) is what vfork and glibc's posix_spawn do: the child
        // borrows the parent's memory, and the parent sleeps until the child has exec'd.
        let mut stack = vec![0u8; 64 << 10];
        let top = (stack.as_mut_ptr() as usize + stack.len()) & !15;
        extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
            // SAFETY: arg is the TrueProgram the parent keeps alive while it is suspended.
            let p = unsafe { &*(arg as *const TrueProgram) };
            // SAFETY: execve and _exit are async-signal-safe; nothing else runs here.
            unsafe {
                libc::execve(p.path.as_ptr(), p.argv.as_ptr(), environ);
                libc::_exit(127)
            }
        }
        b.iter_custom(|iters| {
            median_of_each(iters, || {
                // SAFETY: the child runs on its own stack and only calls execve/_exit; the
                // parent is suspended (CLONE_VFORK) until then, so `prog` and `stack` live.
                let pid = unsafe {
                    libc::clone(
                        child,
                        top as *mut libc::c_void,
                        libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                        &*prog as *const TrueProgram as *mut libc::c_void,
                    )
                };
                assert!(pid > 0, "clone: {}", std::io::Error::last_os_error());
                wait_ok(pid);
            })
        })
    });

    g.bench_function("fork_exec_true_wait", |b| {
        b.iter_custom(|iters| {
            median_of_each(iters, || {
                let pid = fork_or_panic();
                if pid == 0 {
                    // SAFETY: execve and _exit are async-signal-safe; prog was built before fork.
                    unsafe {
                        libc::execve(
                            prog.path.as_ptr(),
                            prog.argv.as_ptr(),
                            environ,
                        );
                        libc::_exit(127)
                    }
                }
                wait_ok(pid);
            })
        })
    });

    g.bench_function("posix_spawn_true_wait", |b| {
        b.iter_custom(|iters| {
            median_of_each(iters, || {
                let mut pid = 0;
                // SAFETY: valid path, argv and environ; no file actions or attributes.
                let r = unsafe {
                    libc::posix_spawn(
                        &mut pid,
                        prog.path.as_ptr(),
                        ptr::null(),
                        ptr::null(),
                        prog.argv.as_ptr() as *const *mut libc::c_char,
                        environ as *const *mut libc::c_char,
                    )
                };
                assert_eq!(r, 0, "posix_spawn");
                wait_ok(pid);
            })
        })
    });

    g.bench_function("command_status", |b| {
        b.iter_custom(|iters| {
            median_of_each(iters, || {
                let st = std::process::Command::new("/bin/true")
                    .status()
                    .expect("spawn /bin/true");
                assert!(st.success());
            })
        })
    });
    g.finish();
}

// ---------------------------------------------------------------- roundtrip

/// One byte there and back between two processes over a pipe pair or a socketpair:
/// `there` carries parent -> child, `back` child -> parent. Each end is a pair of fds.
fn fd_rtt(
    iters: u64,
    place: Placement,
    there: (OwnedFd, OwnedFd),
    back: (OwnedFd, OwnedFd),
) -> Duration {
    // there.0 = child's read end, there.1 = parent's write end; back.0 = parent's read end,
    // back.1 = child's write end.
    let pid = fork_or_panic();
    if pid == 0 {
        place.pin_child();
        drop_raw(there.1.as_raw_fd());
        drop_raw(back.0.as_raw_fd());
        let mut c = [0u8; 1];
        loop {
            if read_fd(there.0.as_raw_fd(), &mut c) != 1 {
                child_exit(true); // EOF: the parent is done
            }
            if write_fd(back.1.as_raw_fd(), &c) != 1 {
                child_exit(false);
            }
        }
    }
    let (w, r) = (there.1, back.0);
    drop(there.0);
    drop(back.1);
    place.pin_parent();
    let mut c = [b'x'; 1];
    let start = Instant::now();
    for _ in 0..iters {
        assert_eq!(write_fd(w.as_raw_fd(), &c), 1);
        assert_eq!(read_fd(r.as_raw_fd(), &mut c), 1);
    }
    let took = start.elapsed();
    drop((w, r)); // the child reads EOF and exits (r may be a dup of w's socket)
    wait_ok(pid);
    place.unpin();
    took
}

fn drop_raw(fd: i32) {
    // SAFETY: closing an fd this (child) process will not use again.
    unsafe { libc::close(fd) };
}

fn socketpair() -> (OwnedFd, OwnedFd) {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::empty())
        .expect("socketpair")
}

fn pipe_rtt(iters: u64, place: Placement) -> Duration {
    fd_rtt(iters, place, pipe(), pipe())
}

fn socketpair_rtt(iters: u64, place: Placement) -> Duration {
    // One socketpair is bidirectional: each side reads and writes its own end.
    let (a, b) = socketpair();
    let a2 = a.try_clone().expect("dup");
    let b2 = b.try_clone().expect("dup");
    // child reads and writes b; parent writes and reads a.
    fd_rtt(iters, place, (b, a), (a2, b2))
}

/// The flag word: 1 = ping (parent to child), 2 = pong, 3 = stop.
fn futex_rtt(iters: u64, place: Placement) -> Duration {
    let map = SharedMap::new(4096);
    let flag = map.word(0);
    flag.store(0, Ordering::SeqCst);
    let pid = fork_or_panic();
    if pid == 0 {
        place.pin_child();
        loop {
            let mut v = flag.load(Ordering::Acquire);
            while v != 1 && v != 3 {
                futex_wait(flag, v); // sleep until the parent changes the word
                v = flag.load(Ordering::Acquire);
            }
            if v == 3 {
                child_exit(true);
            }
            flag.store(2, Ordering::Release);
            futex_wake(flag);
        }
    }
    place.pin_parent();
    let start = Instant::now();
    for _ in 0..iters {
        flag.store(1, Ordering::Release);
        futex_wake(flag);
        while flag.load(Ordering::Acquire) != 2 {
            futex_wait(flag, 1);
        }
    }
    let took = start.elapsed();
    flag.store(3, Ordering::Release);
    futex_wake(flag);
    wait_ok(pid);
    place.unpin();
    took
}

fn channel_rtt(iters: u64, place: Placement) -> Duration {
    let (to_tx, to_rx) = crossbeam::channel::bounded::<u8>(1);
    let (back_tx, back_rx) = crossbeam::channel::bounded::<u8>(1);
    let echo = std::thread::spawn(move || {
        place.pin_child();
        while let Ok(c) = to_rx.recv() {
            if back_tx.send(c).is_err() {
                break;
            }
        }
    });
    place.pin_parent();
    let start = Instant::now();
    for _ in 0..iters {
        to_tx.send(b'x').unwrap();
        black_box(back_rx.recv().unwrap());
    }
    let took = start.elapsed();
    drop(to_tx);
    echo.join().unwrap();
    place.unpin();
    took
}

fn roundtrip(c: &mut Criterion) {
    let mut g = c.benchmark_group("roundtrip");
    tune(&mut g, 200, 1000, 20);
    let cross = proclab::cpu::cpus() >= 2;
    type Rtt = fn(u64, Placement) -> Duration;
    let kinds: [(&str, Rtt); 4] = [
        ("channel_rtt", channel_rtt),
        ("pipe_rtt", pipe_rtt),
        ("socketpair_rtt", socketpair_rtt),
        ("futex_rtt", futex_rtt),
    ];
    for (name, f) in kinds {
        let mut places = vec![("same_cpu", Placement::SameCpu)];
        if cross {
            places.push(("cross_cpu", Placement::CrossCpu));
        }
        if name == "pipe_rtt" {
            places.push(("unpinned", Placement::Unpinned));
        }
        for (suffix, place) in places {
            g.bench_function(format!("{name}_{suffix}"), |b| {
                b.iter_custom(|iters| f(iters, place))
            });
        }
    }
    g.finish();
}

// ---------------------------------------------------------------- bulk

const BULK: usize = 64 << 20;
const CHUNK: usize = 64 << 10;

/// A child that, for each request byte on `ctl`, writes BULK bytes into `data` in CHUNK
/// writes; the parent reads them. Returns the time for `iters` transfers.
fn fd_bulk(iters: u64, place: Placement, data: (OwnedFd, OwnedFd)) -> Duration {
    let (ctl_r, ctl_w) = pipe();
    let (data_r, data_w) = data;
    let src = vec![7u8; CHUNK]; // allocated before fork: the child only reads it
    let pid = fork_or_panic();
    if pid == 0 {
        place.pin_child();
        drop_raw(ctl_w.as_raw_fd());
        drop_raw(data_r.as_raw_fd());
        let mut c = [0u8; 1];
        while read_fd(ctl_r.as_raw_fd(), &mut c) == 1 {
            for _ in 0..BULK / CHUNK {
                if !write_all_fd(data_w.as_raw_fd(), &src) {
                    child_exit(false);
                }
            }
        }
        child_exit(true);
    }
    drop(ctl_r);
    drop(data_w);
    place.pin_parent();
    let mut buf = vec![0u8; CHUNK];
    let mut transfer = || {
        assert_eq!(write_fd(ctl_w.as_raw_fd(), b"g"), 1);
        let mut got = 0;
        while got < BULK {
            let n = read_fd(data_r.as_raw_fd(), &mut buf);
            assert!(n > 0, "read");
            got += n as usize;
        }
    };
    transfer(); // once untimed: the child's first touches and page faults are not the transfer
    let start = Instant::now();
    for _ in 0..iters {
        transfer();
    }
    let took = start.elapsed();
    assert_eq!(buf[0], 7);
    drop(ctl_w);
    wait_ok(pid);
    place.unpin();
    took
}

/// The child copies BULK bytes into a shared mapping and says so with one byte on a pipe;
/// the parent then reads them in place (a checksum of every 8-byte word).
fn shm_bulk(iters: u64, place: Placement) -> Duration {
    let map = SharedMap::new(BULK);
    let src = vec![7u8; BULK]; // the child's data, made before fork
    let (ctl_r, ctl_w) = pipe();
    let (done_r, done_w) = pipe();
    let pid = fork_or_panic();
    if pid == 0 {
        place.pin_child();
        drop_raw(ctl_w.as_raw_fd());
        drop_raw(done_r.as_raw_fd());
        let mut c = [0u8; 1];
        while read_fd(ctl_r.as_raw_fd(), &mut c) == 1 {
            // SAFETY: the mapping is BULK bytes long; the parent reads it only after the
            // byte on `done` says the copy is complete.
            unsafe { ptr::copy_nonoverlapping(src.as_ptr(), map.ptr, BULK) };
            if write_fd(done_w.as_raw_fd(), &c) != 1 {
                child_exit(false);
            }
        }
        child_exit(true);
    }
    drop(ctl_r);
    drop(done_w);
    drop(src);
    place.pin_parent();
    let words = BULK / 8;
    let transfer = || {
        let mut c = [b'g'; 1];
        assert_eq!(write_fd(ctl_w.as_raw_fd(), &c), 1);
        assert!(read_exact_fd(done_r.as_raw_fd(), &mut c));
        // SAFETY: the child finished writing (it said so on the pipe) and waits for the next
        // request, so nobody writes the mapping while it is read.
        let data = unsafe { std::slice::from_raw_parts(map.u64s(), words) };
        black_box(data.iter().fold(0u64, |a, &w| a.wrapping_add(w)));
    };
    // Once untimed: the first pass allocates the shared pages and maps them on both sides
    // (page faults); the figure is the steady state of a mapping reused for every transfer.
    transfer();
    let start = Instant::now();
    for _ in 0..iters {
        transfer();
    }
    let took = start.elapsed();
    drop(ctl_w);
    wait_ok(pid);
    place.unpin();
    took
}

fn bulk(c: &mut Criterion) {
    let mut g = c.benchmark_group("bulk");
    tune(&mut g, 300, 1500, 10);
    g.sampling_mode(SamplingMode::Flat); // iterations take milliseconds: no need to ramp up
    g.throughput(Throughput::Bytes(BULK as u64));

    let src = vec![1u8; BULK];
    let mut dst = vec![2u8; BULK];
    g.bench_function("memcpy_64MiB", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        })
    });
    drop((src, dst));

    g.bench_function("channel_vec_64MiB", |b| {
        let (to_tx, to_rx) = crossbeam::channel::bounded::<Vec<u8>>(1);
        let (back_tx, back_rx) = crossbeam::channel::bounded::<Vec<u8>>(1);
        let echo = std::thread::spawn(move || {
            while let Ok(v) = to_rx.recv() {
                if back_tx.send(v).is_err() {
                    break;
                }
            }
        });
        let mut v = Some(vec![3u8; BULK]);
        // One iteration moves the 64 MiB Vec to the other thread and gets it back: two
        // moves of a (pointer, length, capacity) triple; no byte is copied.
        b.iter(|| {
            to_tx.send(v.take().unwrap()).unwrap();
            v = Some(back_rx.recv().unwrap());
        });
        drop(to_tx);
        echo.join().unwrap();
    });

    let cross = proclab::cpu::cpus() >= 2;
    g.bench_function("pipe_bw_same_cpu", |b| {
        b.iter_custom(|iters| fd_bulk(iters, Placement::SameCpu, pipe()))
    });
    if cross {
        g.bench_function("pipe_bw_cross_cpu", |b| {
            b.iter_custom(|iters| fd_bulk(iters, Placement::CrossCpu, pipe()))
        });
        g.bench_function("socketpair_bw_cross_cpu", |b| {
            b.iter_custom(|iters| fd_bulk(iters, Placement::CrossCpu, socketpair()))
        });
        g.bench_function("shm_bw_cross_cpu", |b| {
            b.iter_custom(|iters| shm_bulk(iters, Placement::CrossCpu))
        });
    }
    g.finish();
}

// ---------------------------------------------------------------- compute

/// The job sizes, in elements of `tvp::job`.
const SIZES: [u32; 4] = [16, 20, 24, 26];

fn processes(size: u64, workers: u64, slots: &SharedMap) -> u64 {
    let out = slots.u64s();
    let mut pids = Vec::with_capacity(workers as usize);
    for k in 0..workers {
        let pid = fork_or_panic();
        if pid == 0 {
            let (lo, hi) = part(size, workers, k);
            // SAFETY: slot k of the shared mapping is this child's alone.
            unsafe { out.add(k as usize).write_volatile(job(lo, hi)) };
            child_exit(true);
        }
        pids.push(pid);
    }
    for pid in pids {
        wait_ok(pid); // after waitpid the child's write to the shared page is visible
    }
    (0..workers as usize)
        // SAFETY: every child has exited; the slots are read-only now.
        .map(|k| unsafe { out.add(k).read_volatile() })
        .fold(0, u64::wrapping_add)
}

fn rayon_job(size: u64) -> u64 {
    use rayon::prelude::*;
    // 64 equal pieces (fewer for tiny jobs); rayon's work stealing spreads them on its pool.
    let pieces = (size / 4096).clamp(1, 64);
    (0..pieces)
        .into_par_iter()
        .map(|k| {
            let (lo, hi) = part(size, pieces, k);
            job(lo, hi)
        })
        .reduce(|| 0, u64::wrapping_add)
}

fn compute(c: &mut Criterion) {
    let mut g = c.benchmark_group("compute");
    tune(&mut g, 200, 1000, 10);
    g.sampling_mode(SamplingMode::Flat);
    let workers = proclab::cpu::cpus() as u64;
    let slots = SharedMap::new(4096);
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers as usize)
        .build_global()
        .ok(); // start rayon's pool once, outside the timings
    for exp in SIZES {
        let size = 1u64 << exp;
        let expected = job(0, size);
        g.throughput(Throughput::Elements(size));
        let label = format!("2^{exp}");
        g.bench_with_input(
            BenchmarkId::new("sequential", &label),
            &size,
            |b, &n| b.iter(|| assert_eq!(job(0, black_box(n)), expected)),
        );
        g.bench_with_input(BenchmarkId::new("rayon", &label), &size, |b, &n| {
            b.iter(|| assert_eq!(rayon_job(black_box(n)), expected))
        });
        g.bench_with_input(
            BenchmarkId::new("scoped_threads", &label),
            &size,
            |b, &n| {
                b.iter(|| {
                    assert_eq!(tvp::split_threads(black_box(n), workers), expected)
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("processes", &label),
            &size,
            |b, &n| {
                b.iter(|| {
                    assert_eq!(processes(black_box(n), workers, &slots), expected)
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, spawn, roundtrip, bulk, compute);
criterion_main!(benches);
