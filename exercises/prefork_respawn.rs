//! Exercise prefork-respawn (chapter 10, book/src/10-prefork.md): keep three workers.
//!
//! A prefork master listens on 127.0.0.1 (a port the kernel picks) and forks 3 workers;
//! they accept on the shared socket and answer each connection with "hello from PID".
//! The master then waits for its children. The checker kills workers with SIGKILL. As
//! given, the master only reports each death, and the pool shrinks. Make it start a
//! replacement for every worker that dies, so that there are always 3.
//!
//! Check: `cargo run --bin lab -- check prefork-respawn`. The checker finds the socket and
//! its holders in /proc, sends requests, kills one worker, then two; each time 3 workers
//! must hold the socket again within 1.5 s, every dead one reaped, and every request
//! answered by a worker that the kernel shows holding the socket.

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

fn main() {
    let master = getpid();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    say_as!("master", "listening on {}", listener.local_addr().expect("address"));
    let mut workers: Vec<Pid> =
        (0..3).map(|_| start_worker(&listener, master)).collect();
    while !workers.is_empty() {
        let status = waitpid(Pid::from_raw(-1), None).expect("waitpid");
        let Some(dead) = status.pid() else { continue };
        say_as!("master", "worker {dead} died: {status:?}");
        workers.retain(|&w| w != dead);
        // TODO: keep three workers: start a replacement for the dead one.
    }
}
