//! The Python side of section 5: start `book/scripts/pool_mp.py` (it dies with the lab),
//! wait for it (bounded) and read the figure it prints as its last JSON line.

use nix::unistd::Pid;
use proclab::lifeline::die_with_parent;
use proclab::{cleanup, procfacts};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// What the lab says when python3 is missing.
pub const MISSING: &str =
    "python3 is not on PATH: the comparison with multiprocessing.Pool \
    is skipped (the verdict does not depend on it); install python3 to see it \
    (apt-get install python3, dnf install python3, brew install python3)";

const SCRIPT: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/book/scripts/pool_mp.py");

pub enum Py {
    Measured { per_task_us: f64, seconds: f64, checksum: u64, version: String },
    Skipped(String),
    Failed(String),
}

// ANCHOR: python
/// Start the script on `tasks` tiny tasks with `workers` processes.
pub fn spawn(tasks: usize, workers: usize) -> Result<Child, Py> {
    let (tasks, workers) = (tasks.to_string(), workers.to_string());
    let mut cmd = Command::new("python3");
    cmd.arg(SCRIPT)
        .args(["--tasks", &tasks, "--workers", &workers])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let lab = nix::unistd::getpid().as_raw();
    // SAFETY: runs in the child between fork and exec: prctl, getppid, _exit.
    unsafe {
        cmd.pre_exec(move || {
            die_with_parent(lab); // python3 dies with the lab, even by SIGKILL
            Ok(())
        })
    };
    let child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Py::Skipped(MISSING.into()),
        _ => Py::Failed(format!("cannot run python3: {e}")),
    })?;
    // Killed on every way out; its Pool workers follow by their own PDEATHSIG.
    cleanup::track(Pid::from_raw(child.id() as i32));
    Ok(child)
}
// ANCHOR_END: python

/// Wait up to 60 s for the script (killed after that), then parse what it printed.
pub fn collect(mut child: Child) -> Py {
    let pid = Pid::from_raw(child.id() as i32);
    let status = procfacts::poll_until(Duration::from_secs(60), || {
        child.try_wait().ok().flatten()
    });
    if status.is_none() {
        let _ = child.kill();
    }
    let _ = child.wait();
    cleanup::forget(pid);
    let mut out = String::new();
    let mut err = String::new();
    let _ = child.stdout.take().map(|mut s| s.read_to_string(&mut out));
    let _ = child.stderr.take().map(|mut s| s.read_to_string(&mut err));
    let Some(status) = status else {
        return Py::Failed("python3 took more than 60 s: killed".into());
    };
    let Some(v) = out
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    else {
        let last = err.lines().last().unwrap_or("").to_string();
        return Py::Failed(format!(
            "python3 exited with {status} and printed no figure: {last}"
        ));
    };
    match (v["per_task_us"].as_f64(), v["seconds"].as_f64(), v["checksum"].as_u64())
    {
        (Some(per_task_us), Some(seconds), Some(checksum)) => Py::Measured {
            per_task_us,
            seconds,
            checksum,
            version: v["python"].as_str().unwrap_or("3").to_string(),
        },
        _ => {
            Py::Failed(format!("unexpected output from the script: {}", out.trim()))
        }
    }
}
