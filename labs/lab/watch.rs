//! `lab watch [NAME]`: check an exercise (NAME, or the next one not done), then check
//! again each time a file in exercises/ is saved (inotify); once it passes, go on to the
//! next. Ctrl-C ends it (the check in progress, if any, kills what it started).

use crate::check;
use crate::exercises::{self, Exercise, EXERCISES};
use std::ffi::CString;
use std::path::Path;

const EVENTS: u32 = libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO | libc::IN_CREATE;

pub fn watch(name: Option<&str>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("exercises");
    // SAFETY: inotify_init1 has no memory-safety preconditions.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    let path = CString::new(dir.display().to_string()).expect("no NUL in the path");
    // SAFETY: `path` is a valid C string for the duration of the call.
    if fd < 0 || unsafe { libc::inotify_add_watch(fd, path.as_ptr(), EVENTS) } < 0 {
        let e = std::io::Error::last_os_error();
        eprintln!("error: inotify on {}: {e}", dir.display());
        std::process::exit(proclab::EXIT_ERROR);
    }
    let mut current = match name {
        Some(n) => exercises::find_or_exit(n),
        None => match exercises::next() {
            Some(e) => e,
            None => return println!("All {} exercises are done.", EXERCISES.len()),
        },
    };
    loop {
        println!(
            "\n>>> lab watch: checking {} (exercises/{})",
            current.name, current.file
        );
        if check::run(current, None, false, true) == 0 {
            match exercises::next() {
                Some(n) if n.name != current.name => {
                    println!(
                        "\n>>> lab watch: on to the next exercise, {}",
                        n.name
                    );
                    current = n;
                    continue;
                }
                _ => return println!("\n>>> lab watch: all exercises are done."),
            }
        }
        println!(
            "\n>>> lab watch: waiting for you to save exercises/{} (Ctrl-C ends)",
            current.file
        );
        current = saved(fd).unwrap_or(current);
    }
}

/// Wait until a file of exercises/ is written; the exercise it belongs to, if any. Files
/// saved in the next 200 ms (an editor's backup, a formatter) are taken in with it.
fn saved(fd: i32) -> Option<&'static Exercise> {
    let mut found = None;
    let mut first = true;
    loop {
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, if first { 1000 } else { 200 }) };
        if n == 0 && !first {
            return found;
        }
        if n <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        // SAFETY: `buf` is writable for its whole length.
        let len = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        let mut at = 0usize;
        while len > 0 && at + 16 <= len as usize {
            let word = |i: usize| {
                u32::from_ne_bytes(buf[at + i..at + i + 4].try_into().unwrap())
            };
            let name_len = word(12) as usize;
            let raw = &buf[at + 16..(at + 16 + name_len).min(len as usize)];
            let file =
                String::from_utf8_lossy(raw).trim_end_matches('\0').to_string();
            if let Some(e) = EXERCISES.iter().find(|e| e.file == file) {
                found = Some(e);
                first = false;
            }
            at += 16 + name_len;
        }
    }
}
