//! The harness the labs share: small helpers, each independent.
//!
//! - [`narrate`]: `say!` lines that name the speaker (`[parent 4211] forked child 4212`),
//!   safe to call in a forked child (no heap, no locks: one `write(2)` per line).
//! - [`report`]: the [`Lab`] that records observations and checks, prints them (or JSON lines
//!   with `--json`) and ends with the verdict and the exit code of the command-line contract.
//! - [`procfacts`]: state, ppid, comm, threads, RSS of a pid from /proc, and the process tree.
//! - [`cleanup`]: children and shared-memory names that are killed, reaped and unlinked on
//!   every way out (normal end, error, panic, SIGINT, SIGTERM).
//! - [`watchdog`]: breaks a hang after a deadline and says that it did.
//! - [`fdio`]: whole reads and writes on a descriptor (async-signal-safe).
//! - [`errors`]: `error: waitpid: ECHILD (No child processes)` on stderr, exit 1.
//! - [`measure`]: a stopwatch, min / median / p99 summaries, and [`Nanos`], a duration
//!   as a fact (`55.6 µs`, JSON in ns).
//! - [`clock`]: the monotonic clock, and deadlines that `--step` pauses do not use up.
//! - [`wait`]: how a child ended, as TLPI prints it (`exited, status 7`), and
//!   `waitpid_by`, a waitpid with a deadline.
//! - [`lifeline`]: descendants that end when the lab dies, even by SIGKILL.
//! - [`nginx`]: a real nginx from a temporary prefix on 127.0.0.1, with a sentinel.
//! - [`cpu`]: pin to a CPU; [`bytes`]: a test pattern and a checksum.
//!
//! Only what several labs use lives here; what serves one lab lives with that lab, and
//! the runner's own code (the roster, benchmark summaries) lives in `labs/lab/`.

pub mod bytes;
pub mod cleanup;
pub mod clock;
pub mod cpu;
pub mod errors;
pub mod fdio;
mod janitor;
pub mod lifeline;
pub mod measure;
pub mod narrate;
pub mod nginx;
pub mod procfacts;
pub mod report;
pub mod wait;
pub mod watchdog;

pub use clock::Deadline;
pub use errors::{die, OrDie};
pub use measure::{Nanos, Stopwatch, Summary};
pub use procfacts::State;
pub use report::{Common, Lab};
pub use wait::Status;
pub use watchdog::Watchdog;

/// The environment variable through which a test removes a lab's phenomenon: a comma
/// list of switch names, e.g. `PROCLAB_TEST_REMOVE=reap_first`.
pub const TEST_REMOVE_VAR: &str = "PROCLAB_TEST_REMOVE";

/// True when a test asked to remove the phenomenon named `what` (one thing changed in the
/// real lab code), to prove that the verdict then turns to "not observed" (exit 3). Never
/// set in normal use. Read it before forking: it reads the environment.
pub fn test_removes(what: &str) -> bool {
    std::env::var(TEST_REMOVE_VAR)
        .is_ok_and(|v| v.split(',').any(|w| w.trim() == what))
}

/// Exit code: the phenomenon was shown and verified.
pub const EXIT_VERIFIED: i32 = 0;
/// Exit code: the lab could not run (the error names the call and errno).
pub const EXIT_ERROR: i32 = 1;
/// Exit code: bad command-line input; nothing was started (clap's usage error).
pub const EXIT_USAGE: i32 = 2;
/// Exit code: it ran, but the phenomenon was not observed on this run.
pub const EXIT_NOT_OBSERVED: i32 = 3;

/// `_exit(2)`: leave this process at once, with `status`, running no destructor, no
/// `atexit` handler and no stdio flush. Async-signal-safe: the way a forked child
/// leaves. (A safe function: `_exit` has no memory-safety preconditions.)
pub fn _exit(status: i32) -> ! {
    // SAFETY: _exit never returns and touches no memory of ours.
    unsafe { libc::_exit(status) }
}

/// Flush Rust's stdout buffer. Call it right before `fork()`, or text still in the buffer
/// is printed twice: once by the parent and once by the child.
pub fn flush_stdout() {
    use std::io::Write;
    let _ = std::io::stdout().flush();
}
