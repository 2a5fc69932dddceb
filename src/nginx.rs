//! A real nginx, for the labs that put one beside or in front of their own servers: run from
//! a temporary prefix, listening on 127.0.0.1 only, with a configuration the lab gives, and
//! a sentinel that kills nginx's process group and removes the prefix if the lab dies (even
//! by SIGKILL: nginx's workers hold no lifeline of ours, and nginx overwrites its
//! environment with its process titles, so a test cannot find them by a tag in it).
//! A Ctrl-C (SIGINT to the lab's whole group) is held until the master and the sentinel
//! both exist; the sentinel ignores SIGINT and SIGTERM, and the lab tracks each worker as
//! soon as it appears: an interrupt at any instant of the start leaves no nginx.

use crate::_exit;
use crate::lifeline::{die_with_parent, Lifeline};
use crate::{cleanup, flush_stdout, procfacts, OrDie};
use nix::sys::signal::{killpg, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{execv, fork, getpid, setpgid, ForkResult, Pid};
use std::ffi::CString;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A running nginx: its master, its workers, its port, its prefix, and the sentinel.
pub struct Nginx {
    pub master: Pid,
    pub workers: Vec<Pid>,
    pub port: u16,
    pub prefix: PathBuf,
    pub sentinel: Pid,
}

/// What the lab wants nginx to be: its workers, its connections per worker, and the body
/// of its `http {}` block for a port (with `listen 127.0.0.1:PORT` in a server block).
pub struct Conf<'a> {
    pub workers: usize,
    pub connections: usize,
    pub http: &'a dyn Fn(u16) -> String,
}

/// The nginx binary, if one is installed.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(
        ["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"]
            .map(PathBuf::from),
    );
    dirs.map(|d| d.join("nginx")).find(|p| p.is_file())
}

/// `nginx/1.22.1`, from `nginx -v`.
pub fn version(bin: &Path) -> String {
    let out = std::process::Command::new(bin).arg("-v").output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
    let text = text.unwrap_or_default();
    text.trim().trim_start_matches("nginx version: ").to_string()
}

/// What nginx writes under its prefix: these, then the prefix itself, are removed.
const MADE: [&str; 8] = [
    "nginx.conf",
    "error.log",
    "nginx.pid",
    "client_body",
    "proxy",
    "fastcgi",
    "uwsgi",
    "scgi",
];

fn config(dir: &Path, port: u16, conf: &Conf) -> String {
    let d = dir.display();
    let temps: String =
        MADE[3..].iter().map(|t| format!("  {t}_temp_path {d}/{t};\n")).collect();
    format!(
        "daemon off;\nmaster_process on;\nworker_processes {};\npid {d}/nginx.pid;\n\
         error_log {d}/error.log error;\nevents {{ worker_connections {}; }}\n\
         http {{\n  access_log off;\n{temps}{}}}\n",
        conf.workers,
        conf.connections,
        (conf.http)(port)
    )
}

/// Start nginx on a free port of 127.0.0.1, from a temporary prefix that `stop` (or the
/// sentinel) removes. Err with nginx's own error log if it does not come up.
pub fn start(
    bin: &Path,
    lifeline: &Lifeline,
    conf: &Conf,
) -> Result<Nginx, String> {
    let dir = std::env::temp_dir().join(format!("proclab-nginx-{}", getpid()));
    let mut last = String::new();
    for _ in 0..3 {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).or_die("mkdir (nginx prefix)");
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .or_die("bind 127.0.0.1:0")
            .port(); // free now; nginx binds it a moment later
        let text = config(&dir, port, conf);
        std::fs::write(dir.join("nginx.conf"), text).or_die("write nginx.conf");
        if let Some(n) = launch(bin, &dir, port, conf.workers, lifeline) {
            return Ok(n);
        }
        let log =
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        last = log.trim().to_string(); // a taken port: try another
    }
    Err(last)
}

fn launch(
    bin: &Path,
    dir: &Path,
    port: u16,
    want: usize,
    lifeline: &Lifeline,
) -> Option<Nginx> {
    let c = |s: &str| CString::new(s).expect("no NUL in a path");
    let prefix = dir.display().to_string();
    // Run from the prefix, so that nginx's process titles stay short.
    let argv = ["nginx", "-p", ".", "-c", "nginx.conf", "-e", "error.log"].map(c);
    let cwd = c(&prefix);
    let exe = c(&bin.display().to_string());
    let null = c("/dev/null");
    let mut made: Vec<CString> =
        MADE.iter().map(|m| c(&format!("{prefix}/{m}"))).collect();
    made.push(c(&prefix));
    let observer = getpid().as_raw();
    // SIGINT and SIGTERM wait until the master is tracked, leads its own group, and
    // its sentinel exists: from then on an interrupt at any instant reaches them all.
    let mut stop = SigSet::empty();
    stop.add(Signal::SIGINT);
    stop.add(Signal::SIGTERM);
    let mut old = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&stop), Some(&mut old))
        .or_die("sigprocmask");
    flush_stdout();
    // SAFETY: the child makes async-signal-safe calls only, then execs.
    let master = match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            // The master dies with the lab, and the sentinel kills its group.
            die_with_parent(observer);
            let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
            // Out of the lab's group now: a Ctrl-C to it no longer reaches us.
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            // SAFETY: chdir, open and dup2 are async-signal-safe.
            unsafe {
                libc::chdir(cwd.as_ptr());
                let fd = libc::open(null.as_ptr(), libc::O_RDWR); // nginx has its log
                for to in 0..3 {
                    libc::dup2(fd, to);
                }
            }
            let _ = execv(&exe, &argv);
            _exit(127)
        }
        ForkResult::Parent { child } => child,
    };
    cleanup::track(master);
    let _ = setpgid(master, master); // whichever of the two runs first
    let sentinel = sentinel(master, lifeline, &made, &old);
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None).or_die("sigprocmask");
    let prefix = dir.to_path_buf();
    let mut n = Nginx { master, workers: Vec::new(), port, prefix, sentinel };
    let ready = procfacts::poll_until(Duration::from_secs(5), || {
        if waitpid(master, Some(WaitPidFlag::WNOHANG)) != Ok(WaitStatus::StillAlive)
        {
            return Some(false); // it exited: see its error log
        }
        let workers: Vec<Pid> = procfacts::tree(master.as_raw())
            .iter()
            .filter(|r| r.depth == 1)
            .map(|r| Pid::from_raw(r.pid))
            .collect();
        // Each worker is tracked as soon as it is seen (and forgotten if it went).
        for w in workers.iter().filter(|w| !n.workers.contains(w)) {
            cleanup::track(*w);
        }
        for w in n.workers.iter().filter(|w| !workers.contains(w)) {
            cleanup::forget(*w);
        }
        let up = workers.len() == want;
        n.workers = workers;
        (up && answers(port)).then_some(true)
    });
    if ready == Some(true) {
        return Some(n);
    }
    n.stop();
    None
}

/// A process that outlives the lab by a moment: when the lifeline breaks (the lab is
/// gone, even by SIGKILL), it kills nginx's process group and removes the prefix. It
/// ignores SIGINT and SIGTERM: a Ctrl-C to the lab's group must not end it first.
/// Forked with both blocked (`old`: the mask to go back to).
fn sentinel(
    group: Pid,
    lifeline: &Lifeline,
    made: &[CString],
    old: &SigSet,
) -> Pid {
    flush_stdout();
    // SAFETY: the child only sets dispositions, polls, kills, unlinks and leaves with
    // _exit (all async-signal-safe).
    match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            // SAFETY: SIG_IGN installs no handler code; signal is async-signal-safe.
            unsafe {
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                libc::signal(libc::SIGTERM, libc::SIG_IGN);
            }
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(old), None);
            lifeline.hold();
            while !lifeline.sleep_ms(-1) {}
            let _ = killpg(group, Signal::SIGKILL);
            for p in made {
                // SAFETY: unlink and rmdir are async-signal-safe; one of them fails.
                unsafe {
                    libc::unlink(p.as_ptr());
                    libc::rmdir(p.as_ptr());
                }
            }
            _exit(0)
        }
        ForkResult::Parent { child } => child,
    }
}

impl Nginx {
    /// Kill what is left of nginx's group and the sentinel, reap them (bounded), and
    /// remove the prefix.
    pub fn stop(&self) {
        let _ = killpg(self.master, Signal::SIGKILL);
        let _ = nix::sys::signal::kill(self.sentinel, Signal::SIGKILL);
        let mut all = self.workers.clone();
        all.extend([self.master, self.sentinel]);
        for p in all {
            let _ = procfacts::poll_until(Duration::from_secs(5), || {
                let w = waitpid(p, Some(WaitPidFlag::WNOHANG));
                (w != Ok(WaitStatus::StillAlive)).then_some(())
            });
            cleanup::forget(p);
        }
        let _ = std::fs::remove_dir_all(&self.prefix);
    }
}

/// `GET /` on 127.0.0.1:`port` with HTTP/1.0: the whole reply, if one came within 2 s.
pub fn get(port: u16) -> Option<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: proclab\r\n\r\n").ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    Some(reply)
}

/// True if nginx answers on `port` (any HTTP answer).
fn answers(port: u16) -> bool {
    get(port).is_some_and(|r| r.starts_with("HTTP/1."))
}
