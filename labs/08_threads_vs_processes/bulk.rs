//! Section 4: hand 64 MiB to the other worker. To a thread, a `Vec` sent over a channel:
//! the thread finds the bytes at the address they were sent from (a pointer moved). To
//! a process, through a pipe: every byte is copied into the kernel and out again.

use crate::claims::{times, Table};
use crate::wait::{reap, JoinOrDie};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpid, pipe, read, ForkResult};
use proclab::_exit;
use proclab::lifeline::die_with_parent;
use proclab::{check, cleanup, die, flush_stdout, observe, Lab, Nanos, OrDie};
use proclab::{Stopwatch, Summary, Watchdog};
use std::os::fd::AsFd;
use std::time::Duration;

const BULK: usize = 64 << 20;
const CHUNK: usize = 64 << 10;

/// Fastest of 5: a 64 MiB Vec sent to another thread, which reads its last byte and says
/// where it found the bytes. True if that was where they were sent from, every time.
fn vec_handover(copies: bool) -> (Duration, bool) {
    let (tx, rx) = crossbeam::channel::bounded::<Vec<u8>>(1);
    let (back_tx, back_rx) = crossbeam::channel::bounded::<(Vec<u8>, usize)>(1);
    // ANCHOR: handover
    let t = std::thread::spawn(move || {
        while let Ok(v) = rx.recv() {
            std::hint::black_box(v[BULK - 1]); // it owns all 64 MiB now
            let at = v.as_ptr() as usize; // where the bytes are
            let _ = back_tx.send((v, at)); // handed back: freeing is not timed
        }
    });
    let mut v = vec![5u8; BULK]; // made (and touched) before the clock starts
    let (mut times, mut same) = (Vec::new(), true);
    for _ in 0..5 {
        let sent_from = v.as_ptr() as usize;
        let sw = Stopwatch::start();
        let _ = tx.send(if copies { v.clone() } else { v }); // ptr, len, cap
        let (back, at) = back_rx.recv().unwrap_or_default();
        times.push(sw.elapsed() / 2); // two hand-overs: there and back
        same &= at == sent_from;
        v = back;
    }
    // ANCHOR_END: handover
    drop(tx); // the thread's recv fails: it ends
    t.join().or_die_thread();
    (Summary::of(&times).min, same) // other programs can only add time
}

/// Fastest of 5: a child writes 64 MiB into a pipe in 64 KiB writes; the parent reads it.
fn pipe_transfer() -> Duration {
    let me = getpid().as_raw();
    let src = vec![5u8; CHUNK]; // the child's data, made before fork
    let mut buf = vec![0u8; CHUNK];
    let mut times = Vec::new();
    for _ in 0..5 {
        let (r, w) = pipe().or_die("pipe");
        flush_stdout();
        // SAFETY: the child only calls prctl, getppid, close, write and _exit.
        let child = match unsafe { cleanup::fork_tracked() } {
            ForkResult::Child => {
                die_with_parent(me);
                drop(r);
                for _ in 0..BULK / CHUNK {
                    if proclab::fdio::write_all(&w, &src).is_err() {
                        _exit(1)
                    }
                }
                _exit(0)
            }
            ForkResult::Parent { child } => child,
        };
        drop(w);
        // A writer that stops (SIGSTOP) would block the reads: kill it at 30 s.
        let dog = Watchdog::arm(Duration::from_secs(30), move || {
            let _ = kill(child, Signal::SIGKILL);
        });
        let (sw, mut got) = (Stopwatch::start(), 0);
        loop {
            match read(r.as_fd(), &mut buf).or_die("read") {
                0 => break, // EOF: the child is done (or dead)
                n => got += n,
            }
        }
        times.push(sw.elapsed());
        dog.disarm();
        let st = reap(child);
        if got != BULK || st.code() != Some(0) {
            die(&format!("pipe: {got} bytes read; the writer {st}"), Errno::EIO);
        }
    }
    Summary::of(&times).min // other programs can only add time
}

pub fn run(lab: &mut Lab, table: &mut Table, as_processes: bool) {
    let copies = proclab::test_removes("handover_copies"); // tests only: send a copy
    let (moved, same_address) = if as_processes {
        (pipe_transfer(), false) // tests only: the "thread" is a process
    } else {
        vec_handover(copies)
    };
    let copied = pipe_transfer();
    let ns = Nanos(moved);
    observe!(
        lab,
        "bulk",
        "a 64 MiB Vec sent to a thread over a channel: {ns}; it arrived at the \
         address it was sent from: {same_address}",
        way = "thread",
        bytes = BULK,
        ns,
        same_address
    );
    let gib_per_s =
        BULK as f64 / copied.as_secs_f64().max(1e-9) / (1u64 << 30) as f64;
    observe!(
        lab,
        "bulk",
        "64 MiB written into a pipe by a child and read by the parent: {ns} \
         ({gib_per_s:.2} GiB/s)",
        way = "process",
        bytes = BULK,
        ns = Nanos(copied),
        gib_per_s
    );
    let (m, c) = (Nanos(moved), Nanos(copied));
    let ratio = times(copied.as_secs_f64(), moved.as_secs_f64());
    table.compare("hand over 64 MiB (fastest of 5)", m, c, ratio);
    let moved_by_pointer = "bulk data goes to a thread by pointer, not by copy";
    table.claim(
        moved_by_pointer,
        format!("same address: {same_address}"),
        same_address,
        true,
    );
    table.claim(
        "handing 64 MiB to a thread costs < 1/10 of a pipe copy",
        format!("{m} vs {c}"),
        ratio > 10.0,
        false,
    );
    check!(
        lab,
        "handover_is_a_move",
        same_address,
        "the thread found the 64 MiB at the address they were sent from \
         ({same_address}): a pointer moved, no byte was copied",
        same_address
    );
}
