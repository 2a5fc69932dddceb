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
        self.events
            .iter()
            .find(|e| e["event"] == "verdict")
            .unwrap_or_else(|| panic!("no verdict in:\n{}\nstderr:\n{}", self.stdout, self.stderr))
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
        assert!(self
            .events
            .iter()
            .filter(|e| e["event"] == "check")
            .all(|c| c["ok"] == true));
    }
}

/// Run lab `name` with `--json` and `args`; wait for it; check it left nothing behind.
pub fn run_json(name: &str, args: &[&str]) -> Run {
    let tag = new_tag(name);
    let out = Command::new(bin(name))
        .arg("--json")
        .args(args)
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
            serde_json::from_str(l).unwrap_or_else(|e| panic!("--json printed a line that is not JSON ({e}): {l:?}"))
        })
        .collect();
    assert_no_leftovers(&tag, Duration::from_secs(5));
    Run {
        code: out.status.code(),
        events,
        stdout,
        stderr,
    }
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
    pub fn wait_for(&mut self, pred: impl Fn(&Value) -> bool) -> Option<Value> {
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
    let tag = new_tag(name);
    let mut child = Command::new(bin(name))
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
                .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().starts_with('Z')))
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
            panic!("processes of run {tag} still alive after the lab ended: {alive:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Send `sig` to a started lab and wait (bounded) for it to end; return its wait status
/// and assert it left no process and no /dev/shm entry behind.
pub fn interrupt(mut s: Started, sig: i32) -> std::process::ExitStatus {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(s.child.id() as i32, sig) };
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
        .filter(|n| n.contains(&format!("-{pid}-")) || n.ends_with(&format!("-{pid}")))
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
