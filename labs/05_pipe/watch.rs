//! Watching children that may hang, so that every blocking wait of the lab ends: the
//! watchdog that finds them asleep in the pipe (stuck, not only late) and kills them,
//! and the net that kills a child that should have ended by itself.

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use proclab::{cleanup, procfacts, State, Status, Watchdog};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A child the watchdog found asleep: its pid, its state and where in the kernel it
/// sleeps (`/proc/PID/wchan`). Shows as `4212 S in anon_pipe_write`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Stuck {
    pub pid: i32,
    pub state: State,
    pub wchan: String,
}

impl Stuck {
    fn of(pid: Pid) -> Stuck {
        let p = pid.as_raw();
        let wchan = procfacts::wchan(p).unwrap_or_default();
        Stuck { pid: p, state: State::of(p), wchan }
    }

    fn ended(&self) -> bool {
        matches!(self.state.0, 'Z' | '?') // a zombie, or already gone
    }
}

impl std::fmt::Display for Stuck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} in {}", self.pid, self.state.0, self.wchan)
    }
}

/// How a watched wait ended: each child's status, whether the watchdog fired, and the
/// children it found stuck (and killed).
pub struct Waited {
    pub statuses: Vec<Status>,
    pub fired: bool,
    pub stuck: Vec<Stuck>,
}

// ANCHOR: watchdog
/// Wait for `kids`; past `deadline` a watchdog looks at them in /proc and, if
/// they sleep in `wchan` (stuck, not just late), records them and kills them.
pub fn wait_or_break(
    kids: &[Pid],
    wchan: &'static str,
    deadline: Duration,
) -> Waited {
    let seen: Arc<Mutex<Vec<Stuck>>> = Arc::default();
    let (record, watched) = (seen.clone(), kids.to_vec());
    let dog = Watchdog::arm(deadline, move || {
        // A bounded look at /proc: all asleep in `wchan`, or all ended?
        let seen = procfacts::poll_until(Duration::from_secs(5), || {
            let now: Vec<_> = watched.iter().map(|&p| Stuck::of(p)).collect();
            if now.iter().all(Stuck::ended) {
                Some(Vec::new()) // they ended by themselves, only late
            } else if now
                .iter()
                .all(|s| s.state.0 == 'S' && s.wchan.contains(wchan))
            {
                Some(now) // asleep in the pipe: stuck
            } else {
                None
            }
        });
        *record.lock().unwrap_or_else(|e| e.into_inner()) =
            seen.clone().unwrap_or_default();
        if seen.is_none_or(|v| !v.is_empty()) {
            for p in &watched {
                let _ = kill(*p, Signal::SIGKILL); // break the hang
            }
        }
    });
    // Each returns when the child ends or is killed (by 5 s past the deadline).
    let statuses = kids.iter().map(|&k| Status(waitpid(k, None))).collect();
    let fired = dog.disarm();
    // ANCHOR_END: watchdog
    kids.iter().for_each(|&k| cleanup::forget(k));
    let stuck = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Waited { statuses, fired, stuck }
}

/// The net under every scenario whose children should end by themselves: one that hangs
/// is killed at this deadline (lab time), so every read, write and waitpid on it ends.
pub const NET: Duration = Duration::from_secs(30);

/// Kill `kids` at [`NET`] unless the watchdog is disarmed first.
pub fn net(kids: &[Pid]) -> Watchdog {
    let kids = kids.to_vec();
    Watchdog::arm(NET, move || {
        kids.iter().for_each(|&k| {
            let _ = kill(k, Signal::SIGKILL);
        })
    })
}
