//! Solution of prefork-respawn: every dead worker that waitpid reports is replaced by a
//! new one, forked from the master, which still holds the listening socket.

use nix::sys::wait::waitpid;
use nix::unistd::{fork, getpid, ForkResult, Pid};
use proclab::say_as;
use std::io::Write;
use std::net::TcpListener;

fn start_worker(listener: &TcpListener, master: Pid) -> Pid {
    // SAFETY: the worker only accepts, writes and closes connections.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            proclab::lifeline::die_with_parent(master.as_raw()); // PDEATHSIG
            loop {
                if let Ok((mut conn, _)) = listener.accept() {
                    let _ = writeln!(conn, "hello from {}", getpid());
                }
            }
        }
        ForkResult::Parent { child } => child,
    }
}

pub fn main() {
    let master = getpid();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    say_as!("master", "listening on {}", listener.local_addr().expect("address"));
    let mut workers: Vec<Pid> = (0..3).map(|_| start_worker(&listener, master)).collect();
    while !workers.is_empty() {
        let status = waitpid(Pid::from_raw(-1), None).expect("waitpid");
        let Some(dead) = status.pid() else { continue };
        say_as!("master", "worker {dead} died: {status:?}");
        workers.retain(|&w| w != dead);
        workers.push(start_worker(&listener, master)); // three again
    }
}
