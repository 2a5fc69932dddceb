//! A wrong solution of prefork-respawn: the master polls kill(pid, 0) to learn whether a
//! worker is alive, instead of waitpid. A dead child it has not reaped is a zombie, and a
//! zombie's pid still exists: kill(pid, 0) succeeds, so no replacement is started and the
//! zombies stay. The check `restored` fails.

use nix::sys::signal::kill;
use nix::unistd::{fork, getpid, ForkResult, Pid};
use proclab::say_as;
use std::io::Write;
use std::net::TcpListener;
use std::time::Duration;

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
    // Look for dead workers every 50 ms: kill(pid, 0) fails once a pid is gone.
    loop {
        std::thread::sleep(Duration::from_millis(50));
        for w in workers.iter_mut() {
            if kill(*w, None).is_err() {
                say_as!("master", "worker {w} died");
                *w = start_worker(&listener, master);
            }
        }
    }
}
