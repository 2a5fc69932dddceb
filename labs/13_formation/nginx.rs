//! Part 6's balancer: the real nginx, in the `lb` namespace, with an upstream of the
//! hosts' web processes. It tells which upstreams it tried in a response header
//! (`X-Upstream: $upstream_addr`). Its master dies with the lab (PR_SET_PDEATHSIG);
//! its workers hold no lifeline of ours: the janitor kills them by their namespace.

use crate::exec::Strings;
use crate::netns::{listens, octets, Ns};
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpid, Pid};
use proclab::lifeline::die_with_parent;
use proclab::{cleanup, procfacts};
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The nginx program, if it is installed.
pub fn bin() -> Option<PathBuf> {
    let dirs = std::env::var("PATH").unwrap_or_default();
    let extra = ["/usr/sbin", "/usr/local/sbin", "/sbin"];
    let found: Vec<PathBuf> =
        dirs.split(':').chain(extra).map(|d| Path::new(d).join("nginx")).collect();
    found.into_iter().find(|p| p.is_file())
}

/// `nginx/1.22.1`.
pub fn version(bin: &Path) -> String {
    let out = std::process::Command::new(bin).arg("-v").output().map(|o| o.stderr);
    let text = String::from_utf8_lossy(&out.unwrap_or_default()).trim().to_string();
    text.rsplit(' ').next().unwrap_or("nginx").to_string()
}

/// nginx.conf of this folder, for `listen` in front of `servers`.
fn config(listen: &str, servers: &[String]) -> String {
    let each =
        |s: &String| format!("        server {s} max_fails=1 fail_timeout=1s;");
    let servers: Vec<String> = servers.iter().map(each).collect();
    let text = include_str!("nginx.conf").replace("{listen}", listen);
    text.replace("{servers}", &servers.join("\n"))
}

/// A running nginx: its master (a child of the lab), its workers, its prefix.
pub struct Nginx {
    pub master: Pid,
    pub workers: Vec<Pid>,
    pub dir: PathBuf,
}

/// Start nginx in `lb`, from the prefix `dir`, in front of `servers`. Err with its
/// error log if it is not up (two workers, and listening) within 5 s.
pub fn start(
    bin: &Path,
    lb: &Ns,
    dir: PathBuf,
    servers: &[String],
) -> Result<Nginx, String> {
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let conf = config(lb.addr, servers);
    std::fs::write(dir.join("nginx.conf"), conf).map_err(|e| format!("{e}"))?;
    // Relative paths from the prefix keep nginx's process titles short.
    let av =
        Strings::new(["nginx", "-p", ".", "-c", "nginx.conf", "-e", "error.log"]);
    let cwd = CString::new(dir.display().to_string()).unwrap_or_default();
    let exe = CString::new(bin.display().to_string()).unwrap_or_default();
    let (me, ns) = (getpid().as_raw(), std::os::fd::AsRawFd::as_raw_fd(&lb.fd));
    proclab::flush_stdout();
    // SAFETY: the child makes async-signal-safe calls only, then execs nginx.
    let master = match unsafe { cleanup::fork_tracked() } {
        nix::unistd::ForkResult::Child => unsafe {
            die_with_parent(me); // the master dies with the lab; the janitor does the rest
            if libc::setns(ns, libc::CLONE_NEWNET) != 0 {
                libc::_exit(126);
            }
            libc::setpgid(0, 0);
            libc::chdir(cwd.as_ptr());
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            libc::execv(exe.as_ptr(), av.array());
            libc::_exit(127)
        },
        nix::unistd::ForkResult::Parent { child } => child,
    };
    let mut n = Nginx { master, workers: Vec::new(), dir };
    let up = procfacts::poll_until(Duration::from_secs(5), || {
        if waitpid(master, Some(WaitPidFlag::WNOHANG)) != Ok(WaitStatus::StillAlive)
        {
            return Some(false); // it exited: see its error log
        }
        let w: Vec<Pid> = procfacts::tree(master.as_raw())
            .iter()
            .filter(|r| r.depth == 1)
            .map(|r| Pid::from_raw(r.pid))
            .collect();
        (w.len() == 2 && listens(master.as_raw(), octets(lb.addr), 80)).then(|| {
            n.workers = w;
            true
        })
    });
    n.workers.iter().for_each(|&w| cleanup::track(w)); // a Ctrl-C of the lab kills them
    if up == Some(true) {
        return Ok(n);
    }
    let log = std::fs::read_to_string(n.dir.join("error.log")).unwrap_or_default();
    n.stop();
    Err(format!("nginx did not come up: {}", log.trim()))
}

impl Nginx {
    /// SIGTERM (nginx's fast shutdown: the master ends its workers), then SIGKILL to
    /// its group if it is not gone within 3 s; the master reaped; the prefix removed.
    pub fn stop(&self) {
        let _ = kill(self.master, Signal::SIGTERM);
        let gone = procfacts::poll_until(Duration::from_secs(3), || {
            let w = waitpid(self.master, Some(WaitPidFlag::WNOHANG));
            (w != Ok(WaitStatus::StillAlive)).then_some(())
        });
        if gone.is_none() {
            let _ = killpg(self.master, Signal::SIGKILL);
            let _ = waitpid(self.master, None);
        }
        cleanup::forget(self.master);
        self.workers.iter().for_each(|&w| cleanup::forget(w));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
