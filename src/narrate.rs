//! Narration: one line per event, naming the speaker: `[parent 4211] forked child 4212`.
//!
//! `say!` formats into a buffer on the stack and writes it with one `write(2)`: no heap and
//! no lock, so a forked child may call it (the rule after `fork` is async-signal-safe calls
//! only). With `--json`, narration is off and only JSON lines are printed.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);
static COLOUR: AtomicBool = AtomicBool::new(false);
static OWNER: AtomicI32 = AtomicI32::new(0);

/// Mark the calling process as the lab's main process (the one that speaks as "parent").
pub fn set_owner_here() {
    // SAFETY: getpid has no preconditions.
    OWNER.store(unsafe { libc::getpid() }, Ordering::SeqCst);
}

/// The pid of the lab's main process (0 before [`set_owner_here`]).
pub fn owner() -> i32 {
    OWNER.load(Ordering::SeqCst)
}

/// True in the lab's main process, false in a forked child.
pub fn is_owner() -> bool {
    // SAFETY: getpid has no preconditions.
    (unsafe { libc::getpid() }) == owner()
}

/// Turn narration off (`--json`) or on.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::SeqCst);
}

/// True when narration is off (`--json`).
pub fn quiet() -> bool {
    QUIET.load(Ordering::SeqCst)
}

/// Colour the speaker tags (only on a terminal, never when NO_COLOR is set).
pub fn set_colour(colour: bool) {
    COLOUR.store(colour, Ordering::SeqCst);
}

/// True when output is coloured.
pub fn colour() -> bool {
    COLOUR.load(Ordering::SeqCst)
}

/// True when stdout is a terminal and NO_COLOR is not set.
pub fn colour_wanted() -> bool {
    // SAFETY: isatty only reads the descriptor's type.
    let tty = unsafe { libc::isatty(1) } == 1;
    tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A fixed buffer on the stack that `core::fmt` can write into. Longer text is cut.
pub struct StackBuf {
    buf: [u8; 2048],
    len: usize,
}

impl StackBuf {
    pub const fn new() -> Self {
        StackBuf { buf: [0; 2048], len: 0 }
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Default for StackBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Write all of `bytes` to `fd` with `write(2)`, retrying on EINTR and short writes.
/// Async-signal-safe.
pub fn write_all_fd(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe a live slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            // SAFETY: reading errno is async-signal-safe.
            if unsafe { *libc::__errno_location() } == libc::EINTR {
                continue;
            }
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

#[doc(hidden)]
pub fn say_fmt(role: Option<&str>, args: fmt::Arguments) {
    if quiet() {
        return;
    }
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let role = role.unwrap_or(if pid == owner() { "parent" } else { "child" });
    let mut line = StackBuf::new();
    let (on, off) = if colour() { ("\x1b[36m", "\x1b[0m") } else { ("", "") };
    let _ = writeln!(line, "{on}[{role} {pid}]{off} {args}");
    write_all_fd(1, line.as_bytes());
}

/// Print a plain line (no speaker), unless `--json`. Async-signal-safe like `say!`.
#[doc(hidden)]
pub fn line_fmt(args: fmt::Arguments) {
    if quiet() {
        return;
    }
    let mut line = StackBuf::new();
    let _ = writeln!(line, "{args}");
    write_all_fd(1, line.as_bytes());
}

/// `say!("forked child {pid}")` prints `[parent 4211] forked child 4212` in the lab's main
/// process and `[child 4212] ...` in a forked child. Safe after `fork`.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { $crate::narrate::say_fmt(None, format_args!($($arg)*)) };
}

/// `say_as!("orphan", "my parent is now {ppid}")` names the speaker explicitly.
#[macro_export]
macro_rules! say_as {
    ($role:expr, $($arg:tt)*) => { $crate::narrate::say_fmt(Some($role), format_args!($($arg)*)) };
}

/// A plain line of text with no speaker (headings, tables), unless `--json`.
#[macro_export]
macro_rules! plain {
    ($($arg:tt)*) => { $crate::narrate::line_fmt(format_args!($($arg)*)) };
}
