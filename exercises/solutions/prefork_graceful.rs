//! Solution of prefork-graceful: the master catches SIGTERM, passes SIGTERM on to each
//! worker, and reaps until ECHILD; each worker finishes its request before leaving.

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags};
use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, getpid, ForkResult, Pid};
use proclab::say_as;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use proclab::_exit;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// SIGTERM sets STOP; without SA_RESTART, a blocked accept or waitpid returns EINTR.
fn catch_sigterm() {
    let on = SigAction::new(SigHandler::Handler(on_term), SaFlags::empty(), SigSet::empty());
    // SAFETY: the handler only stores to an atomic.
    unsafe { sigaction(Signal::SIGTERM, &on) }.expect("sigaction");
}

fn start_worker(listener: &TcpListener, master: Pid) -> Pid {
    // SAFETY: the worker only accepts, reads, sleeps, writes and calls _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            proclab::lifeline::die_with_parent(master.as_raw()); // PDEATHSIG
            catch_sigterm(); // finish the request in hand, then leave
            while !STOP.load(Ordering::SeqCst) {
                // Wake every 100 ms to look at STOP; the socket is non-blocking, so a
                // worker that loses the race for a connection is not stuck in accept.
                let mut ready = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
                if poll(&mut ready, 100u16) != Ok(1) {
                    continue;
                }
                let Ok((mut conn, _)) = listener.accept() else { continue };
                let _ = conn.read(&mut [0u8; 64]);
                std::thread::sleep(Duration::from_millis(500)); // the work
                let _ = conn.write_all(b"done\n");
            }
            _exit(0)
        }
        ForkResult::Parent { child } => child,
    }
}

pub fn main() {
    let master = getpid();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("O_NONBLOCK");
    say_as!("master", "listening on {}", listener.local_addr().expect("address"));
    let workers: Vec<Pid> = (0..2).map(|_| start_worker(&listener, master)).collect();
    say_as!("master", "workers {workers:?}");
    catch_sigterm();
    let mut passed_on = false;
    loop {
        if STOP.load(Ordering::SeqCst) && !passed_on {
            for &w in &workers {
                let _ = kill(w, Signal::SIGTERM); // each finishes its request first
            }
            passed_on = true;
        }
        match waitpid(Pid::from_raw(-1), None) {
            Ok(status) => say_as!("master", "a worker ended: {status:?}"),
            Err(Errno::EINTR) => {} // SIGTERM: passed on at the top of the loop
            Err(_) => break,        // ECHILD: every worker is gone
        }
    }
}
