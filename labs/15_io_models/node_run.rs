//! Running the lecture's cluster.js (plumbing of node.rs): find node, start the master
//! (it dies with the lab; its workers leave when its IPC channel closes), read its lines
//! until both workers listen, and stop it (SIGTERM, a bounded wait, then SIGKILL).

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use proclab::lifeline::die_with_parent;
use proclab::wait::waitpid_by;
use proclab::{cleanup, fdio, procfacts, Deadline};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

pub const SCRIPT: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/labs/15_io_models/cluster.js");

/// A program on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// `v20.20.2`, from `node --version`.
pub fn version(node: &Path) -> String {
    let out = Command::new(node).arg("--version").output();
    out.map_or("node".into(), |o| {
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    })
}

/// A running cluster.js: its master, port and workers.
pub struct Cluster {
    pub master: Pid,
    pub port: u16,
    pub workers: Vec<i32>,
    child: Child,
    _out: ChildStdout, // kept open: node may still print
}

/// Start cluster.js with the scheduling `policy` (None: node's default); wait (15 s at
/// most) until its workers listen.
pub fn start(node: &Path, policy: Option<&str>) -> Result<Cluster, String> {
    let mut cmd = Command::new(node);
    cmd.arg(SCRIPT).env("PORT", "0").stdout(Stdio::piped()).stderr(Stdio::null());
    match policy {
        Some(p) => cmd.env("NODE_CLUSTER_SCHED_POLICY", p),
        None => cmd.env_remove("NODE_CLUSTER_SCHED_POLICY"),
    };
    let one = proclab::test_removes("node_one_worker"); // tests only
    if one {
        cmd.env("WORKERS", "1");
    }
    if proclab::test_removes("node_close_each") {
        cmd.env("CLOSE_EACH", "1"); // tests only
    }
    let lab = nix::unistd::getpid().as_raw();
    // SAFETY: runs in the child between fork and exec: prctl, getppid, _exit.
    unsafe {
        cmd.pre_exec(move || {
            die_with_parent(lab); // node's master dies with the lab, even by SIGKILL
            Ok(())
        })
    };
    let mut child = cmd.spawn().map_err(|e| format!("cannot run node: {e}"))?;
    let master = Pid::from_raw(child.id() as i32);
    cleanup::track(master); // killed on every way out; its workers follow
    let out = child.stdout.take().ok_or("no stdout")?;
    let got = listening(&out, if one { 1 } else { 2 });
    let c = Cluster { master, port: 0, workers: Vec::new(), child, _out: out };
    match got {
        Ok((port, workers)) => Ok(Cluster { port, workers, ..c }),
        Err(e) => {
            c.stop();
            Err(e)
        }
    }
}

impl Cluster {
    /// SIGTERM to the master; its workers see their IPC channel close and exit.
    pub fn stop(mut self) {
        let all: Vec<i32> =
            procfacts::tree(self.master.as_raw()).iter().map(|r| r.pid).collect();
        let _ = kill(self.master, Signal::SIGTERM);
        if waitpid_by(self.master, Deadline::after(Duration::from_secs(5)))
            .is_none()
        {
            let _ = kill(self.master, Signal::SIGKILL);
            let _ =
                waitpid_by(self.master, Deadline::after(Duration::from_secs(5)));
        }
        cleanup::forget(self.master);
        let gone =
            |p: &i32| !procfacts::exists(*p) || procfacts::state(*p) == Some('Z');
        procfacts::poll_until(Duration::from_secs(2), || {
            all.iter().all(gone).then_some(())
        });
        let _ = self.child.try_wait();
    }
}

/// The first number in a line: `worker 4213 listening on 40857`, `pid 4213: ...`.
pub fn pid_in(text: &str) -> Option<i32> {
    text.split(|c: char| !c.is_ascii_digit()).find(|w| !w.is_empty())?.parse().ok()
}

/// Read node's lines until `want` workers say `listening on PORT` (15 s at most).
fn listening(out: &ChildStdout, want: usize) -> Result<(u16, Vec<i32>), String> {
    let by = Deadline::after(Duration::from_secs(15));
    let (mut text, mut buf) = (String::new(), [0u8; 1024]);
    loop {
        let lines: Vec<&str> =
            text.lines().filter(|l| l.contains(" listening on ")).collect();
        if lines.len() >= want {
            let port = lines[0].rsplit(' ').next().and_then(|p| p.parse().ok());
            let pids = lines.iter().filter_map(|l| pid_in(l)).collect();
            return port.map(|p| (p, pids)).ok_or(format!("no port in {text:?}"));
        }
        match fdio::readable_by(out.as_fd(), by) {
            Ok(true) => {}
            _ => return Err(format!("no worker listening after 15 s: {text:?}")),
        }
        match nix::unistd::read(out.as_fd(), &mut buf) {
            Ok(0) | Err(_) => return Err(format!("node ended: {text:?}")),
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
}
