//! Shared by the integration tests: run a lab's binary as a separate process (so no test
//! forks inside the test harness), parse its JSON lines, and check that it left nothing
//! behind: no process of the run alive, no /dev/shm entry of its pid.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The environment variable every process of a test run inherits, so that leftovers can be
/// found in /proc/PID/environ whatever their parent is now.
pub const TAG_VAR: &str = "PROCLAB_TEST_RUN";

/// The path of a lab's binary: target/<profile>/NAME, beside this test's deps/ directory.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    dir.join(name)
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The prefix of every tag of this checkout's test suite (another checkout's tests running
/// on the same machine carry another prefix).
pub fn tag_prefix() -> String {
    format!("{}:", env!("CARGO_MANIFEST_DIR"))
}

/// A tag unique to one lab run.
pub fn new_tag(name: &str) -> String {
    format!(
        "{}{name}-{}-{}",
        tag_prefix(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// What a lab run produced.
pub struct Run {
    pub code: Option<i32>,
    pub events: Vec<Value>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// All observations of `kind`.
    pub fn observations(&self, kind: &str) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| e["event"] == "observation" && e["kind"] == kind)
            .collect()
    }
    /// The one observation of `kind` (panics if there is not exactly one).
    pub fn observation(&self, kind: &str) -> &Value {
        let all = self.observations(kind);
        assert_eq!(
            all.len(),
            1,
            "expected one {kind:?} observation, got {}:\n{}",
            all.len(),
            self.stdout
        );
        all[0]
    }
    /// The check called `name`: its ok flag.
    pub fn check(&self, name: &str) -> bool {
        let c = self
            .events
            .iter()
            .find(|e| e["event"] == "check" && e["name"] == name)
            .unwrap_or_else(|| panic!("no check {name:?} in:\n{}", self.stdout));
        c["ok"].as_bool().expect("check has ok")
    }
    /// The verdict event.
    pub fn verdict(&self) -> &Value {
        self.events.iter().find(|e| e["event"] == "verdict").unwrap_or_else(|| {
            panic!("no verdict in:\n{}\nstderr:\n{}", self.stdout, self.stderr)
        })
    }
    /// Assert that the run ended "not observed": exit 3, a verdict with `ok: false` and
    /// outcome `not_observed`, and the check `check` among the failed ones.
    pub fn assert_not_observed(&self, check: &str) {
        assert_eq!(
            self.code,
            Some(3),
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        let v = self.verdict();
        assert_eq!(v["ok"], false, "{v}");
        assert_eq!(v["outcome"], "not_observed", "{v}");
        let failed = v["failed"].as_array().expect("failed list");
        assert!(
            failed.iter().any(|f| f == check),
            "the verdict names {check:?} among the failed checks: {v}"
        );
        assert!(
            !self.check(check),
            "the check {check:?} itself says it failed:\n{}",
            self.stdout
        );
    }

    /// Assert the run verified its claim: exit 0, verdict ok, every check ok.
    pub fn assert_verified(&self) {
        assert_eq!(
            self.code,
            Some(0),
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        assert_eq!(self.verdict()["ok"], true);
        assert_eq!(self.verdict()["outcome"], "verified");
        assert!(self
            .events
            .iter()
            .filter(|e| e["event"] == "check")
            .all(|c| c["ok"] == true));
    }
}

/// Run lab `name` with `--json` and `args`; wait for it; check it left nothing behind.
pub fn run_json(name: &str, args: &[&str]) -> Run {
    run_json_env(name, args, &[])
}

/// [`run_json`] with the phenomenon `what` removed by the lab's test switch
/// (`PROCLAB_TEST_REMOVE=what`, read by `proclab::test_removes`).
pub fn run_removed(name: &str, args: &[&str], what: &str) -> Run {
    run_json_env(name, args, &[("PROCLAB_TEST_REMOVE", what)])
}

/// [`run_json`] with extra environment variables.
pub fn run_json_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let tag = new_tag(name);
    let out = Command::new(bin(name))
        .arg("--json")
        .args(args)
        .envs(env.iter().copied())
        .env(TAG_VAR, &tag)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let events = stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!("--json printed a line that is not JSON ({e}): {l:?}")
            })
        })
        .collect();
    assert_no_leftovers(&tag, Duration::from_secs(5));
    Run { code: out.status.code(), events, stdout, stderr }
}

/// Run lab `name` without `--json` (human output) and return (exit code, stdout).
pub fn run_human(name: &str, args: &[&str]) -> (Option<i32>, String) {
    let tag = new_tag(name);
    let out = Command::new(bin(name))
        .args(args)
        .env(TAG_VAR, &tag)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    assert_no_leftovers(&tag, Duration::from_secs(5));
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A lab started in the background with `--json`, read line by line.
pub struct Started {
    pub child: Child,
    pub tag: String,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Started {
    /// Read JSON lines until one satisfies `pred` (returns it), or the output ends (None).
    pub fn wait_for(
        &mut self,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Option<Value> {
        for line in self.lines.by_ref() {
            let v: Value = serde_json::from_str(&line.ok()?).ok()?;
            if pred(&v) {
                return Some(v);
            }
        }
        None
    }
}

/// Start lab `name` with `--json` and `args`, without waiting.
pub fn start_json(name: &str, args: &[&str]) -> Started {
    start_json_in(name, args, false)
}

/// [`start_json`] as a shell starts a foreground job: in a process group of its own
/// (its pid), so that [`interrupt_group`] can send a Ctrl-C to the whole group.
pub fn start_json_own_group(name: &str, args: &[&str]) -> Started {
    start_json_in(name, args, true)
}

fn start_json_in(name: &str, args: &[&str], own_group: bool) -> Started {
    use std::os::unix::process::CommandExt;
    let tag = new_tag(name);
    let mut cmd = Command::new(bin(name));
    if own_group {
        cmd.process_group(0);
    }
    let mut child = cmd
        .arg("--json")
        .args(args)
        .env(TAG_VAR, &tag)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    Started { child, tag, lines }
}

/// Pids of live (non-zombie) processes whose environment carries `TAG_VAR=tag`.
pub fn tagged_processes(tag: &str) -> Vec<i32> {
    let needle = format!("{TAG_VAR}={tag}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()) {
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit(')').next().map(|r| r.trim_start().starts_with('Z'))
                })
                .unwrap_or(false);
            if !zombie {
                found.push(pid);
            }
        }
    }
    found
}

/// Names in /dev/shm that a lab created (they all start with `proclab-`).
pub fn shm_entries() -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("proclab"))
                .collect()
        })
        .unwrap_or_default()
}

/// Assert that within `grace` no process of the run tagged `tag` is alive (the orphan lab's
/// orphan may take a moment to end by itself).
pub fn assert_no_leftovers(tag: &str, grace: Duration) {
    let deadline = Instant::now() + grace;
    loop {
        let alive = tagged_processes(tag);
        if alive.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            for pid in &alive {
                // SAFETY: kill has no memory-safety preconditions; these are the test's own.
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
            panic!(
                "processes of run {tag} still alive after the lab ended: {alive:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Send `sig` to a started lab and wait (bounded) for it to end; return its wait status
/// and assert it left no process and no /dev/shm entry behind.
pub fn interrupt(s: Started, sig: i32) -> std::process::ExitStatus {
    let pid = s.child.id() as i32;
    interrupt_pid(s, sig, pid)
}

/// [`interrupt`], but `sig` goes to the lab's whole process group, as a Ctrl-C on a
/// terminal does (start the lab with [`start_json_own_group`]).
pub fn interrupt_group(s: Started, sig: i32) -> std::process::ExitStatus {
    let group = -(s.child.id() as i32);
    interrupt_pid(s, sig, group)
}

fn interrupt_pid(
    mut s: Started,
    sig: i32,
    target: i32,
) -> std::process::ExitStatus {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(target, sig) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = s.child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = s.child.kill();
            let _ = s.child.wait();
            panic!("lab did not end within 10 s of signal {sig}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_no_leftovers(&s.tag, Duration::from_secs(5));
    let pid = s.child.id();
    let left: Vec<String> = shm_entries()
        .into_iter()
        .filter(|n| {
            n.contains(&format!("-{pid}-")) || n.ends_with(&format!("-{pid}"))
        })
        .collect();
    assert!(
        left.is_empty(),
        "shared memory left in /dev/shm after signal {sig}: {left:?}"
    );
    status
}

/// [`interrupt`], and assert that the lab died of `sig` itself: the harness's handler kills
/// and reaps the children, unlinks the segments, then re-raises the signal.
pub fn interrupt_dies_of(s: Started, sig: i32) {
    use std::os::unix::process::ExitStatusExt;
    let status = interrupt(s, sig);
    assert_eq!(
        status.signal(),
        Some(sig),
        "the lab dies of signal {sig} after cleaning up"
    );
}

/// Assert that a bad flag value exits 2 with a message on stderr and nothing on stdout.
pub fn assert_usage_error(name: &str, args: &[&str]) {
    let tag = new_tag(name);
    let out = Command::new(bin(name))
        .args(args)
        .env(TAG_VAR, &tag)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{name} {args:?} should exit 2");
    assert!(
        !out.stderr.is_empty(),
        "{name} {args:?} should explain the error on stderr"
    );
    assert!(tagged_processes(&tag).is_empty());
}

/// SIGKILL a started lab (no handler of its own can run) and assert that within 1 s no
/// process of its run is alive: every descendant has a lifeline (PDEATHSIG with the
/// getppid re-check, or a pipe's end of file). Zombies do not count: they are dead, and
/// whoever adopted them reaps them.
pub fn sigkill_leaves_nothing(mut s: Started) {
    let lab = s.child.id();
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(lab as i32, libc::SIGKILL) };
    let _ = s.child.wait();
    let killed_at = Instant::now();
    let deadline = killed_at + Duration::from_millis(1000);
    // The lab's names in /dev/shm carry its pid (`proclab-shm-PID-...`).
    let names = || -> Vec<String> {
        shm_entries()
            .into_iter()
            .filter(|n| {
                n.contains(&format!("-{lab}-")) || n.ends_with(&format!("-{lab}"))
            })
            .collect()
    };
    loop {
        let alive = tagged_processes(&s.tag);
        if alive.is_empty() && names().is_empty() {
            return;
        }
        if Instant::now() > deadline {
            let what: Vec<String> = alive
                .iter()
                .map(|p| {
                    let stat = std::fs::read_to_string(format!("/proc/{p}/stat"))
                        .unwrap_or_default();
                    let wchan = std::fs::read_to_string(format!("/proc/{p}/wchan"))
                        .unwrap_or_default();
                    format!(
                        "{} wchan={wchan}",
                        stat.split_whitespace()
                            .take(4)
                            .collect::<Vec<_>>()
                            .join(" ")
                    )
                })
                .collect();
            for pid in &alive {
                // SAFETY: as above; these are the test's own leftovers.
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
            panic!(
                "1 s after the lab was SIGKILLed these of its processes were alive: {what:?}; left in /dev/shm: {:?}",
                names()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Start lab `name` with `--json` and `args`, wait for the `n`-th event satisfying `pred`
/// (1-based; None if the output ended first), sleep `after`, then SIGKILL it and assert
/// nothing of it outlives it by a second. Returns false if the instant never came.
pub fn sigkill_at(
    name: &str,
    args: &[&str],
    n: usize,
    pred: impl Fn(&Value) -> bool,
    after: Duration,
) -> bool {
    let mut s = start_json(name, args);
    let mut seen = 0;
    let reached = s
        .wait_for(|v| {
            if pred(v) {
                seen += 1;
            }
            seen >= n
        })
        .is_some();
    std::thread::sleep(after);
    sigkill_leaves_nothing(s);
    reached
}

/// What a run on a pseudo-terminal printed, and how it ended.
pub struct PtyRun {
    pub code: Option<i32>,
    pub output: String,
    /// How many `--step` prompts it showed.
    pub prompts: usize,
}

/// Run lab `name` with `--step` on a pseudo-terminal (stdin and stdout are a terminal, so
/// the pauses are on) and press Enter `delay` after each prompt, as a learner who looks
/// before going on. Bounded by `limit`; leaves nothing behind.
pub fn run_stepping(
    name: &str,
    args: &[&str],
    delay: Duration,
    limit: Duration,
) -> PtyRun {
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, slave) = {
        let (mut m, mut sl) = (0, 0);
        // SAFETY: openpty writes two descriptors; no name, termios or size are passed.
        let rc = unsafe {
            libc::openpty(
                &mut m,
                &mut sl,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty");
        // SAFETY: both descriptors were just opened and are owned here.
        unsafe { (std::fs::File::from_raw_fd(m), OwnedFd::from_raw_fd(sl)) }
    };
    let tag = new_tag(name);
    let mut child = Command::new(bin(name))
        .arg("--step")
        .args(args)
        .env(TAG_VAR, &tag)
        .env("NO_COLOR", "1")
        .stdin(Stdio::from(slave.try_clone().expect("dup")))
        .stdout(Stdio::from(slave.try_clone().expect("dup")))
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    let start = Instant::now();
    let mut output = Vec::new();
    let mut prompts = 0;
    let mut buf = [0u8; 4096];
    let mut exited_at: Option<Instant> = None;
    loop {
        let mut p = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&master),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut p, 1, 200) } > 0;
        if ready {
            // EIO once the lab and all its children closed the terminal.
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => output.extend_from_slice(&buf[..n]),
            }
            let text = String::from_utf8_lossy(&output);
            let now = text.matches("[--step]").count();
            while prompts < now {
                prompts += 1;
                std::thread::sleep(delay);
                let _ = master.write_all(b"\n");
            }
        } else if exited_at.is_none() && child.try_wait().ok().flatten().is_some() {
            exited_at = Some(Instant::now());
        }
        // The lab has exited and its output has been read (a descendant may hold the
        // terminal open; the leftover check below catches it).
        if exited_at.is_some_and(|t| t.elapsed() > Duration::from_millis(500)) {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            assert_no_leftovers(&tag, Duration::from_secs(5));
            panic!(
                "{name} --step did not end within {limit:?}:\n{}",
                String::from_utf8_lossy(&output)
            );
        }
    }
    let status = child.wait().expect("wait");
    assert_no_leftovers(&tag, Duration::from_secs(5));
    PtyRun {
        code: status.code(),
        output: String::from_utf8_lossy(&output).into_owned(),
        prompts,
    }
}
