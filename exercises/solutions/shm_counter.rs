//! Solution of shm-counter: lock the process-shared mutex around each increment.

use nix::fcntl::OFlag;
use nix::sys::mman::{mmap, shm_open, MapFlags, ProtFlags};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, pipe, read, ForkResult};
use proclab::say_as;
use std::num::NonZeroUsize;
use proclab::_exit;

/// The segment's layout: the checker reads `counter` (the first 8 bytes).
#[repr(C)]
struct Shared {
    counter: u64,
    lock: libc::pthread_mutex_t,
}

fn increment(shared: *mut Shared) {
    // SAFETY: `shared` points into a mapping of the segment that stays for the program;
    // the mutex was initialised process-shared before the children were forked.
    unsafe {
        libc::pthread_mutex_lock(&mut (*shared).lock);
        let v = std::ptr::read_volatile(&(*shared).counter);
        for _ in 0..20 {
            std::hint::spin_loop(); // a little work between the read and the write
        }
        std::ptr::write_volatile(&mut (*shared).counter, v + 1);
        libc::pthread_mutex_unlock(&mut (*shared).lock);
    }
}

pub fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (name, n): (&str, u64) = (&args[1], args[2].parse().expect("N"));
    let fd = shm_open(name, OFlag::O_RDWR, Mode::empty()).expect("shm_open");
    let len = NonZeroUsize::new(std::mem::size_of::<Shared>()).expect("size");
    let prot = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
    // SAFETY: a fresh shared mapping of the segment, never unmapped while in use.
    let p = unsafe { mmap(None, len, prot, MapFlags::MAP_SHARED, &fd, 0) };
    let shared = p.expect("mmap").as_ptr() as *mut Shared;
    // A mutex that works between processes: PTHREAD_PROCESS_SHARED, in shared memory.
    // SAFETY: `attr` and the mutex are initialised here, before any child exists.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        libc::pthread_mutexattr_init(&mut attr);
        libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
        libc::pthread_mutex_init(&mut (*shared).lock, &attr);
    }
    let (gate_r, gate_w) = pipe().expect("pipe");
    let mut kids = Vec::new();
    for _ in 0..2 {
        // SAFETY: the child only reads the gate, increments and calls _exit.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                drop(gate_w);
                let _ = read(&gate_r, &mut [0u8; 1]); // end of file: start together
                for _ in 0..n {
                    increment(shared);
                }
                _exit(0)
            }
            ForkResult::Parent { child } => kids.push(child),
        }
    }
    drop(gate_w); // both children start now
    for child in kids {
        waitpid(child, None).expect("waitpid");
    }
    // SAFETY: both children have ended; nobody else writes the counter.
    let total = unsafe { std::ptr::read_volatile(&(*shared).counter) };
    say_as!("parent", "counter = {total}, expected {}", 2 * n);
}
