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

/// How long the watchdog looks at /proc before it kills anyway.
const LOOK_FOR: Duration = Duration::from_secs(5);

/// Wait for `kids`; past the deadline `d` a watchdog looks at them in /proc and, if
/// they sleep in `wchan` (stuck, not just late), records them and kills them.
// ANCHOR: watchdog
pub fn wait_or_break(kids: &[Pid], wchan: &'static str, d: Duration) -> Waited {
    let seen: Arc<Mutex<Vec<Stuck>>> = Arc::default();
    let (record, watched) = (seen.clone(), kids.to_vec());
    let dog = Watchdog::arm(d, move || {
        // A bounded look at /proc: all asleep in `wchan`, or all ended?
        let found = procfacts::poll_until(LOOK_FOR, || look(&watched, wchan));
        let stuck = found.as_ref().is_none_or(|v| !v.is_empty());
        *record.lock().unwrap_or_else(|e| e.into_inner()) =
            found.unwrap_or_default();
        if stuck {
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

/// What /proc says of `kids`: all asleep in `wchan` (stuck: them), all ended (only
/// late: nobody), or neither yet (None: look again).
fn look(kids: &[Pid], wchan: &str) -> Option<Vec<Stuck>> {
    let now: Vec<Stuck> = kids.iter().map(|&p| Stuck::of(p)).collect();
    if now.iter().all(Stuck::ended) {
        Some(Vec::new())
    } else if now.iter().all(|s| s.state.0 == 'S' && s.wchan.contains(wchan)) {
        Some(now)
    } else {
        None
    }
}

/// The net under every scenario whose children should end by themselves: one that hangs
/// is killed at this deadline (lab time), so every read, write and waitpid on it ends.
pub const NET: Duration = Duration::from_secs(30);

/// Kill `kids` at [`NET`], plus `work` at 1 ms a unit (a MiB to move, a round trip
/// to make: far more than they take on a busy machine), unless disarmed first.
pub fn net(kids: &[Pid], work: usize) -> Watchdog {
    let kids = kids.to_vec();
    let by = NET + Duration::from_millis(work as u64);
    Watchdog::arm(by, move || {
        kids.iter().for_each(|&k| {
            let _ = kill(k, Signal::SIGKILL);
        })
    })
}
