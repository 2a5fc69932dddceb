//! The lab's side of a manager: start `formation manage` as a child of the lab (tracked,
//! dying with the lab), read its output on a thread, read its `system` lines back into
//! events, and see its processes in /proc: PS and PORT from /proc/PID/environ, ppid,
//! group and session from /proc/PID/stat (seen.rs).

use crate::events::{parse_line, Event, Line};
use crate::exec::{pass_fd, Strings};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpid, Pid};
use proclab::lifeline::{die_with_parent, Lifeline};
use proclab::wait::waitpid_by;
use proclab::{cleanup, flush_stdout, Deadline, OrDie, Status};
use std::io::BufRead;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

/// How a manager is to be run.
pub struct Spec<'a> {
    pub formation: &'a str,
    pub policy: &'a str,
    pub port: u16,
    pub grace_ms: u64,
    pub subreaper: bool,
    /// Extra environment for the manager and its processes.
    pub env: Vec<(&'static str, String)>,
    /// A network namespace to run it in (an open /run/netns/NAME).
    pub netns: Option<RawFd>,
    /// How many of its processes' lines to print (its system lines too, unless 0).
    pub show: usize,
}

impl<'a> Spec<'a> {
    /// `formation` under `policy`, on 127.0.0.1 from `port`, every line shown.
    pub fn new(
        formation: &'a str,
        policy: &'a str,
        port: u16,
        grace_ms: u64,
    ) -> Spec<'a> {
        let (env, netns) = (Vec::new(), None);
        Spec {
            formation,
            policy,
            port,
            grace_ms,
            subreaper: false,
            env,
            netns,
            show: 40,
        }
    }
}

/// A running manager, as the lab sees it.
pub struct Run {
    pub pid: Pid,
    /// FORMATION_RUN: every process of this run carries it in its environment.
    pub tag: String,
    rx: Receiver<String>,
    show: usize,
    shown: usize,
    json: bool,
    /// The manager's clock (seconds since it started) on the last line read.
    pub t: f64,
    /// Every system line read so far, and the manager's clock on each.
    pub events: Vec<Event>,
    pub times: Vec<f64>,
    /// The processes' own short lines read so far (name, on stderr, text).
    pub said: Vec<(String, bool, String)>,
}

static RUNS: AtomicU32 = AtomicU32::new(0);

/// Start a manager: fork, and in the child die with the lab, enter the namespace if
/// any, keep the lifeline's read end as fd 3, send stdout and stderr into a pipe, exec.
pub fn start(
    spec: &Spec,
    files: &crate::files::Files,
    lifeline: &Lifeline,
    json: bool,
) -> Run {
    let me = getpid().as_raw();
    let tag = format!("{me}.{}", RUNS.fetch_add(1, Ordering::SeqCst) + 1);
    let mut argv = vec![
        crate::exec::exe(),
        "manage".into(),
        "--procfile".into(),
        files.procfile.clone(),
    ];
    for (k, v) in [
        ("--formation", spec.formation.to_string()),
        ("--policy", spec.policy.into()),
        ("--port", spec.port.to_string()),
        ("--grace-ms", spec.grace_ms.to_string()),
    ] {
        argv.extend([k.to_string(), v]);
    }
    if spec.subreaper {
        argv.push("--subreaper".into());
    }
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    let ours = [
        ("FORMATION", crate::exec::exe()),
        ("FORMATION_RUN", tag.clone()),
        ("PROCLAB_LIFELINE", "3".into()),
        ("QUEUE", files.queue.clone()),
        ("PIDFILE", files.pidfile.clone()),
    ];
    env.extend(
        ours.into_iter()
            .chain(spec.env.iter().cloned())
            .map(|(k, v)| (k.to_string(), v)),
    );
    let av = Strings::new(argv);
    let ev = Strings::new(env.into_iter().map(|(k, v)| format!("{k}={v}")));
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).or_die("pipe2");
    let (netns, life) = (spec.netns.unwrap_or(-1), lifeline.fd());
    flush_stdout();
    // SAFETY: the child makes async-signal-safe calls only, on data built before fork.
    let pid = match unsafe { cleanup::fork_tracked() } {
        nix::unistd::ForkResult::Child => unsafe {
            die_with_parent(me);
            if netns >= 0 && libc::setns(netns, libc::CLONE_NEWNET) != 0 {
                libc::_exit(126);
            }
            libc::dup2(wr.as_raw_fd(), 1);
            libc::dup2(wr.as_raw_fd(), 2);
            libc::dup2(libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY), 0);
            pass_fd(life, 3);
            libc::execve(av.first(), av.array(), ev.array());
            libc::_exit(127)
        },
        nix::unistd::ForkResult::Parent { child } => child,
    };
    drop(wr); // the manager holds the only write end: its end is our end of file
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = std::io::BufReader::new(std::fs::File::from(rd));
        let mut buf = Vec::new();
        while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            let line =
                String::from_utf8_lossy(&buf).trim_end_matches('\n').to_string();
            if tx.send(line).is_err() {
                return;
            }
            buf.clear();
        }
    });
    Run {
        pid,
        tag,
        rx,
        show: spec.show,
        shown: 0,
        json,
        t: 0.0,
        events: Vec::new(),
        times: Vec::new(),
        said: Vec::new(),
    }
}

impl Run {
    /// The next line, printed for the learner (a process's line only while `show`
    /// allows); None at end of file or when `deadline` passed.
    pub fn next(&mut self, deadline: Deadline) -> Option<Line> {
        let text = loop {
            match self.rx.recv_timeout(Duration::from_millis(
                deadline.poll_ms(100).max(1) as u64,
            )) {
                Ok(t) => break t,
                Err(RecvTimeoutError::Timeout) if deadline.expired() => {
                    return None
                }
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        };
        Some(self.take(text))
    }

    /// Note one line (the manager's clock, its event, a process's short line) and
    /// print it for the learner as `show` allows.
    fn take(&mut self, text: String) -> Line {
        let line = parse_line(&text);
        self.t = text
            .split_whitespace()
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or(self.t);
        match &line {
            Line::System(e) => {
                self.events.push(e.clone());
                self.times.push(self.t);
            }
            Line::Process { name, err, text }
                if text.len() < 300 && self.said.len() < 5000 =>
            {
                self.said.push((name.clone(), *err, text.clone()))
            }
            _ => {}
        }
        let system = matches!(line, Line::System(_));
        if !self.json && self.show > 0 && (system || self.shown < self.show) {
            self.shown += usize::from(!system);
            let cut: String = text.chars().take(96).collect();
            let more = if cut.len() < text.len() {
                format!(" ... ({} bytes)", text.len())
            } else {
                String::new()
            };
            proclab::plain!("    {cut}{more}");
        }
        line
    }

    /// Read (and print) the lines that have already arrived, without waiting.
    pub fn pending(&mut self) {
        while let Ok(text) = self.rx.try_recv() {
            self.take(text);
        }
    }

    /// Read lines until a system line satisfies `want` (returns it), or the deadline.
    pub fn until(
        &mut self,
        within: Duration,
        mut want: impl FnMut(&Event) -> bool,
    ) -> Option<Event> {
        let d = Deadline::after(within);
        while let Some(l) = self.next(d) {
            if let Line::System(e) = l {
                if want(&e) {
                    return Some(e);
                }
            }
        }
        None
    }

    /// Every line left until the manager's end of file (bounded), then its status.
    pub fn wait_exit(&mut self, within: Duration) -> Option<Status> {
        let d = Deadline::after(within);
        while self.next(d).is_some() {}
        let st = waitpid_by(self.pid, d);
        if st.is_some() {
            cleanup::forget(self.pid);
        }
        st
    }

    /// SIGTERM, as Ctrl-C or `kill` would send, then what `wait_exit` says; SIGKILL
    /// if the manager has not ended by then.
    pub fn stop(&mut self, within: Duration) -> Option<Status> {
        let _ = kill(self.pid, Signal::SIGTERM);
        let st = self.wait_exit(within);
        if st.is_none() {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = waitpid_by(self.pid, Deadline::after(Duration::from_secs(5)));
            cleanup::forget(self.pid);
        }
        st
    }

    /// Processes of this run still alive (not zombies), by FORMATION_RUN.
    pub fn leftovers(&self) -> Vec<i32> {
        crate::seen::tagged(&self.tag)
    }
}
