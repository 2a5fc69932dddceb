//! Demo section 1, the master binds one socket and forks the workers: `socket`, `bind`,
//! `listen`, then `fork` N times; each worker asks for SIGTERM when the master dies and
//! sleeps in `accept4` on the socket it inherited. /proc shows one socket in every worker.

use crate::client::{accept_fd, socket_inode};
use crate::master::{lab_now, Master, Worker};
use crate::serve::{set_accept_tick, setsockopt_int, sockopt, Bufs};
use crate::signals;
use crate::worker::{accept_loop, on_fast, on_term, set_handler, Cfg};
use nix::errno::Errno;
use nix::unistd::{getpid, getppid, ForkResult, Pid};
use proclab::_exit;
use proclab::{check, cleanup, die, flush_stdout, observe, procfacts, say_as, Lab};
use std::os::fd::RawFd;
use std::time::Duration;

/// 127.0.0.1:`port` as the kernel takes it, and its length.
pub fn loopback(port: u16) -> (libc::sockaddr_in, libc::socklen_t) {
    let ip = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: ip },
        sin_zero: [0; 8],
    };
    (addr, size_of::<libc::sockaddr_in>() as libc::socklen_t)
}

/// The listening socket on 127.0.0.1:`port`; returns it and the port it got (port 0: the
/// kernel picks). With `listen` false (SO_REUSEPORT) the socket only holds the port.
/// `defer_s` > 0: TCP_DEFER_ACCEPT for that many seconds (see `defer_accept`).
pub fn bind_listener(
    port: u16,
    reuseport: bool,
    listen: bool,
    defer_s: i32,
) -> (RawFd, u16) {
    let (addr, len) = loopback(port);
    // ANCHOR: bind
    let tcp = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_INET, tcp, 0) };
    if fd < 0 {
        die("socket", Errno::last());
    }
    setsockopt_int(fd, libc::SO_REUSEADDR, 1); // restart at once despite TIME_WAIT
    if reuseport {
        setsockopt_int(fd, libc::SO_REUSEPORT, 1); // others may bind the port too
    }
    // SAFETY: `addr` is a live sockaddr_in of `len` bytes.
    if unsafe { libc::bind(fd, (&raw const addr).cast(), len) } < 0 {
        die("bind", Errno::last()); // EADDRINUSE: try --port 0
    }
    if listen {
        // From here on the kernel completes TCP handshakes by itself.
        // SAFETY: listen(2) takes no pointers.
        if unsafe { libc::listen(fd, BACKLOG) } < 0 {
            die("listen", Errno::last());
        }
        set_accept_tick(fd); // accept4 gives up every TICK_MS: see worker.rs
    }
    // ANCHOR_END: bind
    if listen && defer_s > 0 {
        defer_accept(fd, defer_s);
    }
    let (mut got, mut glen) = (addr, len);
    // SAFETY: `got` is a live sockaddr_in of `glen` bytes, for the port the kernel gave.
    unsafe { libc::getsockname(fd, (&raw mut got).cast(), &mut glen) };
    (fd, u16::from_be(got.sin_port))
}

/// The queue of connections the kernel has accepted for us, as gunicorn's `--backlog`
/// (the kernel caps it at net.core.somaxconn).
pub const BACKLOG: i32 = 2048;

// ANCHOR: defer
/// TCP_DEFER_ACCEPT: the kernel completes the handshake but hands the
/// connection to `accept` only once its first byte has arrived, or once
/// `secs` have passed (rounded up to its SYN-ACK retransmissions: 1, 3, 7,
/// 15 s...). Returns the seconds it keeps.
pub fn defer_accept(fd: RawFd, secs: i32) -> i32 {
    let tcp = libc::IPPROTO_TCP;
    if sockopt(fd, tcp, libc::TCP_DEFER_ACCEPT, &secs) < 0 {
        die("setsockopt(TCP_DEFER_ACCEPT)", Errno::last());
    }
    let (mut kept, mut len) = (0i32, size_of::<i32>() as libc::socklen_t);
    let at = (&raw mut kept).cast();
    // SAFETY: `kept` is a live int of `len` bytes.
    unsafe { libc::getsockopt(fd, tcp, libc::TCP_DEFER_ACCEPT, at, &mut len) };
    kept
}
// ANCHOR_END: defer

/// Where the server listens, with how many workers of which kind.
pub fn listening(
    lab: &mut Lab,
    port: u16,
    workers: usize,
    threads: bool,
    rp: bool,
) {
    let model = if threads { "threads" } else { "process" };
    let kind = if threads { "worker threads" } else { "worker processes" };
    let how = if rp {
        "SO_REUSEPORT: one socket per worker"
    } else {
        "one shared socket"
    };
    let pid = getpid().as_raw();
    observe!(
        lab,
        "listening",
        "listening on http://127.0.0.1:{port}/ with {workers} {kind} ({how})",
        port,
        workers,
        model,
        reuseport = rp,
        pid
    );
}

impl Master {
    /// Fork one worker. The master's other methods are in master.rs.
    // ANCHOR: spawn
    pub fn spawn(&mut self, lab: &mut Lab, why: String) -> Pid {
        flush_stdout(); // or text still buffered would be printed by the worker too

        // SAFETY: the child runs worker_main: system calls and say! into buffers
        // allocated before the fork, no heap, no locks; it ends in _exit.
        match unsafe { cleanup::fork_tracked() } {
            ForkResult::Child => worker_main(&self.cfg, self.me, &mut self.bufs),
            ForkResult::Parent { child } => {
                let born = lab_now(); // tracked: reaped on every way out
                self.workers.push(Worker { pid: child, born, retiring: false });
                let pid = child.as_raw();
                if !self.quiet {
                    observe!(
                        lab,
                        "worker_started",
                        "master {ppid} forked worker {pid} ({why})",
                        pid,
                        ppid = procfacts::ppid(child.as_raw()).unwrap_or(0),
                        why
                    );
                }
                child
            }
        }
    }
    // ANCHOR_END: spawn
}

/// A worker process: block in accept() on the shared socket, serve, repeat.
fn worker_main(cfg: &Cfg, master: Pid, bufs: &mut Bufs) -> ! {
    // ANCHOR: worker
    // Ask the kernel for SIGTERM when the master dies (fork does not pass it on).
    // SAFETY: prctl takes no pointers here.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
    if getppid() != master {
        // _exit is async-signal-safe. The master died before prctl.
        _exit(0)
    }
    let graceful = if cfg.sigterm_fast { on_fast } else { on_term }; // tests only
    set_handler(libc::SIGTERM, Some(graceful)); // finish the request, then stop
    set_handler(libc::SIGINT, Some(on_fast)); // leave now
    set_handler(libc::SIGQUIT, Some(on_fast));
    for sig in [libc::SIGHUP, libc::SIGTTIN, libc::SIGTTOU] {
        set_handler(sig, None); // the master's business, not ours
    }
    // The master's signals were blocked when it forked: the mask is inherited.
    let _ = signals::signals(false).thread_unblock();
    // ANCHOR_END: worker
    if cfg.broken {
        say_as!("worker", "broken deploy: exiting with code 70 at start");
        _exit(70)
    }
    let listen_fd = cfg.listener();
    if !cfg.quiet {
        say_as!("worker", "ready, blocking in accept()");
    }
    let me = getpid().as_raw();
    let (conns, reqs) = accept_loop(listen_fd, cfg, bufs, me, Some(master));
    if !cfg.quiet {
        say_as!("worker", "stopping: served {conns} connections, {reqs} requests");
    }
    // _exit is async-signal-safe; a worker never returns into main.
    _exit(0)
}

pub fn run(lab: &mut Lab, m: &mut Master) {
    lab.section("1. The master binds one socket and forks the workers");
    let (fd, me) = (m.cfg.listen_fd, getpid());
    listening(lab, m.cfg.port, m.want, false, m.cfg.reuseport);
    m.start_all(lab);
    lab.show_tree(me);
    let pids = m.pids();
    // ANCHOR: demo_start
    let master_sock = socket_inode(me, fd).unwrap_or_default();
    procfacts::poll_until(Duration::from_secs(5), || {
        pids.iter().all(|&p| accept_fd(p).is_some()).then_some(())
    });
    let (mut shared, mut in_accept) = (0, 0);
    for &pid in &pids {
        let on = accept_fd(pid); // the fd it sleeps in accept4 on, from /proc
        let sock = on.and_then(|f| socket_inode(pid, f)).unwrap_or_default();
        let seen = match on {
            Some(fd) => format!("blocked in accept4 on fd {fd} -> {sock}"),
            None => "not seen in accept4".into(),
        };
        let pid = pid.as_raw();
        observe!(
            lab,
            "worker_socket",
            "worker {pid}: /proc/{pid}/syscall: {seen}",
            pid,
            fd = on,
            socket = sock,
            in_accept4 = on.is_some()
        );
        shared += (sock == master_sock && sock.starts_with("socket:")) as usize;
        in_accept += on.is_some() as usize;
    }
    // ANCHOR_END: demo_start
    let n = pids.len();
    check!(
        lab,
        "one_socket_all_in_accept",
        shared == n && in_accept == n,
        "{shared} of {n} workers hold the master's socket ({master_sock}) and \
         {in_accept} of {n} sleep in accept4 on it",
        shared,
        in_accept,
        n
    );
}
