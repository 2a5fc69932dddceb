//! Section 3: one byte there and back, between two threads over two crossbeam channels
//! and between two processes over two pipes. Which is cheaper depends on the load and on
//! where the two tasks run, so the claim is reported, not checked.

use crate::claims::{times, Table};
use crate::wait::{reap, JoinOrDie};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpid, pipe, read, write, ForkResult};
use proclab::_exit;
use proclab::lifeline::die_with_parent;
use proclab::{
    cleanup, die, flush_stdout, observe, Lab, Nanos, OrDie, Stopwatch, Watchdog,
};
use std::os::fd::AsFd;
use std::time::Duration;

/// Mean round trip of one byte between this thread and an echo thread.
fn channel_rtt(rounds: u32) -> Duration {
    let (to_tx, to_rx) = crossbeam::channel::bounded::<u8>(1);
    let (back_tx, back_rx) = crossbeam::channel::bounded::<u8>(1);
    let echo = std::thread::spawn(move || {
        while let Ok(b) = to_rx.recv() {
            let _ = back_tx.send(b);
        }
    });
    let sw = Stopwatch::start();
    for _ in 0..rounds {
        let _ = to_tx.send(1);
        let _ = back_rx.recv();
    }
    let took = sw.elapsed();
    drop(to_tx); // the echo thread's recv fails: it ends
    echo.join().or_die_thread();
    took / rounds
}

/// Mean round trip of one byte between this process and an echo child, over two pipes.
fn pipe_rtt(rounds: u32) -> Duration {
    let me = getpid().as_raw();
    // ANCHOR: pipe_rtt
    let (there_r, there_w) = pipe().or_die("pipe"); // parent -> child
    let (back_r, back_w) = pipe().or_die("pipe"); // child -> parent
    flush_stdout();
    // SAFETY: the child only calls prctl, getppid, close, read, write and _exit.
    let child = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            die_with_parent(me);
            drop(there_w); // or the child would never see EOF
            let mut b = [0u8; 1];
            while read(there_r.as_fd(), &mut b) == Ok(1) {
                let _ = write(&back_w, &b); // echo it back
            }
            _exit(0)
        }
        ForkResult::Parent { child } => child,
    };
    drop((there_r, back_w));
    // ANCHOR_END: pipe_rtt
    // An echo child that stops (SIGSTOP) would block the loop: kill it at 120 s.
    let dog = Watchdog::arm(Duration::from_secs(120), move || {
        let _ = kill(child, Signal::SIGKILL);
    });
    // ANCHOR: rtt_loop
    let (mut b, mut echoed) = ([1u8; 1], 0);
    let sw = Stopwatch::start();
    for _ in 0..rounds {
        write(&there_w, &b).or_die("write");
        echoed += read(back_r.as_fd(), &mut b).or_die("read"); // 0: it died
    }
    let took = sw.elapsed();
    // ANCHOR_END: rtt_loop
    dog.disarm();
    drop(there_w); // EOF: the child leaves its loop
    let st = reap(child);
    if echoed != rounds as usize {
        die(
            &format!("echo: {echoed} of {rounds} bytes came back; it {st}"),
            Errno::EIO,
        );
    }
    took / rounds
}

pub fn run(lab: &mut Lab, table: &mut Table, rounds: u32) {
    let chan = channel_rtt(rounds);
    let pipes = pipe_rtt(rounds);
    for (way, d, how) in [
        ("thread", chan, "crossbeam channel between two threads:"),
        ("process", pipes, "pipe pair between two processes:      "),
    ] {
        observe!(
            lab,
            "roundtrip",
            "{how} {ns} per round trip",
            way,
            rounds,
            ns = Nanos(d)
        );
    }
    let (c, p) = (Nanos(chan), Nanos(pipes));
    let ratio = times(pipes.as_secs_f64(), chan.as_secs_f64());
    table.compare("one-byte round trip (mean)", c, p, ratio);
    table.claim(
        "a message round trip is cheaper between threads",
        format!("{c} vs {p}"),
        chan < pipes,
        false,
    );
}
