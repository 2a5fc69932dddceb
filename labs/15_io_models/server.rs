//! Plumbing of the servers: the settings every model shares, the listening socket, the
//! `--serve MODEL` entry of a server process (a fresh exec of this binary, free to start
//! threads and allocate), its "ready" message, and how a master waits to be stopped.
//! The lab's side of a server (start, stop) is in launch.rs.

use crate::app::Cost;
use crate::{eventloop, prefork, reuseport, threads, Args, Model};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use proclab::{die, fdio};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// What every model does the same way.
#[derive(Clone, Copy)]
pub struct Cfg {
    /// The cost of a request without a query.
    pub default: Cost,
    pub keepalive: Duration,
    /// At most this many connections in one event loop.
    pub max_conns: usize,
    /// Tests only: the CPU part spins on the wall clock, not on CPU time.
    pub wall_clock: bool,
    /// Tests only: the waiting part burns CPU instead of waiting.
    pub busy_wait: bool,
    /// Tests only: the event loop sleeps through the waiting part.
    pub loop_sleeps: bool,
    /// Tests only: the event loop answers without waiting.
    pub skip_wait: bool,
    /// Tests only: each event-loop connection gets a 64 KiB buffer, written.
    pub big_buffers: bool,
    /// Tests only: the pool's threads may only run on CPU 0.
    pub one_cpu: bool,
}

impl Cfg {
    /// From the flags; the test switches come from the environment.
    pub fn from_args(a: &Args) -> Cfg {
        let t = proclab::test_removes;
        Cfg {
            default: Cost { cpu_ms: a.cpu_ms, wait_ms: a.wait_ms },
            keepalive: Duration::from_millis(a.keepalive_ms),
            max_conns: a.worker_connections as usize,
            wall_clock: t("wall_clock_burn"),
            busy_wait: t("busy_wait"),
            loop_sleeps: t("loop_sleeps"),
            skip_wait: t("skip_wait"),
            big_buffers: t("loop_buffers"),
            one_cpu: t("one_cpu_pool"),
        }
    }
}

/// The flags a server passes on to the servers it starts: those not at their default.
pub fn shared_flags(a: &Args) -> Vec<String> {
    let flags = [
        ("cpu-ms", a.cpu_ms, 0),
        ("wait-ms", a.wait_ms, 0),
        ("keepalive-ms", a.keepalive_ms, 30_000),
        ("worker-connections", u64::from(a.worker_connections), 10_000),
    ];
    flags
        .iter()
        .filter(|f| f.1 != f.2)
        .map(|f| format!("--{}={}", f.0, f.1))
        .collect()
}

/// An int option of level SOL_SOCKET; dies if the kernel refuses it.
fn sockopt(fd: RawFd, opt: libc::c_int, v: libc::c_int) {
    let len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the value is a live c_int of `len` bytes.
    let r = unsafe {
        libc::setsockopt(fd, libc::SOL_SOCKET, opt, (&raw const v).cast(), len)
    };
    if r < 0 {
        die("setsockopt", Errno::last());
    }
}

/// A TCP socket on 127.0.0.1:`port` (0: the kernel picks one); returns it and its
/// port. With `reuseport`, other sockets may bind the same port (SO_REUSEPORT).
pub fn listener(port: u16, reuseport: bool, listen: bool) -> (RawFd, u16) {
    // ANCHOR: listener
    let tcp = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_INET, tcp, 0) };
    if fd < 0 {
        die("socket", Errno::last());
    }
    sockopt(fd, libc::SO_REUSEADDR, 1);
    if reuseport {
        sockopt(fd, libc::SO_REUSEPORT, 1); // the kernel balances the group
    }
    let mut addr = loopback(port);
    let mut len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `addr` is a live sockaddr_in of `len` bytes, in and out.
    unsafe {
        if libc::bind(fd, (&raw const addr).cast(), len) < 0 {
            die("bind", Errno::last());
        }
        if listen && libc::listen(fd, 4096) < 0 {
            die("listen", Errno::last()); // the kernel caps 4096 at somaxconn
        }
        libc::getsockname(fd, (&raw mut addr).cast(), &mut len);
    }
    (fd, u16::from_be(addr.sin_port))
    // ANCHOR_END: listener
}

/// 127.0.0.1:`port` as a sockaddr_in.
pub fn loopback(port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// `--serve MODEL`: this process is a server from here on.
pub fn serve(model: Model, a: &Args) -> ! {
    let cfg = Cfg::from_args(a);
    let cores = proclab::cpu::cpus();
    let n = a.workers.map(|n| n as usize);
    let ready = a.ready_fd; // started by the lab: port 0, the kernel picks
    let port = a.port.unwrap_or(if ready.is_some() { 0 } else { 8080 });
    match model {
        Model::Prefork => {
            prefork::serve(&cfg, n.unwrap_or(2 * cores + 1), port, ready)
        }
        Model::Threads => threads::per_connection(&cfg, port, ready),
        Model::Pool => threads::pool(&cfg, n.unwrap_or(2 * cores + 1), port, ready),
        Model::Loop => {
            let (fd, port) = listener(port, a.reuseport, true);
            say_ready(ready, port, "one event loop");
            eventloop::run(fd, &cfg)
        }
        Model::Loops => reuseport::serve(n.unwrap_or(cores), port, ready, a),
    }
}

/// Tell the lab that we serve on `port` (six bytes on its pipe), or, run by hand, say it.
pub fn say_ready(ready: Option<RawFd>, port: u16, what: &str) {
    match ready {
        Some(fd) => {
            let msg = format!("{port:05}\n");
            // SAFETY: the lab gave us this descriptor; we close it after one message.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let _ = fdio::write_all(&fd, msg.as_bytes());
        }
        None => println!("{what} on http://127.0.0.1:{port}/ until Ctrl-C"),
    }
}

/// Block SIGTERM and SIGINT, to take them later with [`wait_for_stop`] (a master).
pub fn block_stop_signals() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    let _ = set.thread_block();
    set
}

/// A master: sleep until SIGTERM or SIGINT, then SIGKILL and reap `workers`, exit 0.
pub fn wait_for_stop(set: nix::sys::signal::SigSet, workers: &[Pid]) -> ! {
    let _ = set.wait();
    for &w in workers {
        let _ = kill(w, Signal::SIGKILL);
    }
    for &w in workers {
        let _ = nix::sys::wait::waitpid(w, None);
    }
    std::process::exit(0)
}
