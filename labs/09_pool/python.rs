//! The Python side of section 5: wait (bounded) for `book/scripts/pool_mp.py` and read the
//! figure it prints as its last JSON line.

use nix::unistd::Pid;
use proclab::{cleanup, procfacts};
use std::io::Read;
use std::process::Child;
use std::time::Duration;

/// What the lab says when python3 is missing.
pub const MISSING: &str =
    "python3 is not on PATH: the comparison with multiprocessing.Pool \
    is skipped (the verdict does not depend on it); install python3 to see it \
    (apt-get install python3, dnf install python3, brew install python3)";

pub enum Py {
    Measured { per_task_us: f64, seconds: f64, checksum: u64, version: String },
    Skipped(String),
    Failed(String),
}

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
