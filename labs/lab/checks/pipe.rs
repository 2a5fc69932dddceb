//! Checks of the pipe exercises (chapter 5).

use super::{end_or_stuck, exited_cleanly, ms, Outcome};
use crate::observer::Observer;
use nix::sys::signal::Signal;
use proclab::fdio::readable_by;
use proclab::{check, observe, Deadline, Lab};
use std::io::Read;
use std::time::Duration;

const SIZE: u64 = 1 << 20;

/// The pipe descriptors of `pid` (not its stdin, stdout, stderr): (fd, pipe, writable).
fn pipe_fds(pid: i32) -> Vec<(String, String, bool)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in dir.flatten() {
        let fd = e.file_name().to_string_lossy().into_owned();
        let to = std::fs::read_link(e.path()).map(|p| p.display().to_string());
        let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"));
        let flags = info.ok().and_then(|i| {
            let f = i
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))?
                .trim()
                .to_string();
            u32::from_str_radix(&f, 8).ok()
        });
        if let (Ok(to), Some(flags)) = (to, flags) {
            if to.starts_with("pipe:") && !["0", "1", "2"].contains(&fd.as_str()) {
                out.push((fd, to, flags & 0o3 != 0));
            }
        }
    }
    out
}

/// The write ends `pid` holds of the pipes it reads from: `fd 4 -> pipe:[1234]`.
fn own_write_ends(pid: i32) -> Vec<String> {
    let fds = pipe_fds(pid);
    let read: Vec<&String> = fds.iter().filter(|f| !f.2).map(|f| &f.1).collect();
    let ends = fds.iter().filter(|f| f.2 && read.contains(&&f.1));
    ends.map(|(fd, to, _)| format!("fd {fd} -> {to}")).collect()
}

/// pipe-eof: the reader ends by itself within 2 s of the writer, having read all of it.
pub fn eof(lab: &mut Lab, obs: &mut Observer) {
    let pid = obs.spawn(&[]);
    let mut held = Vec::new();
    let writer_end = obs.until(Duration::from_secs(10), |tl| {
        if held.is_empty() {
            held = own_write_ends(pid);
        }
        let w = tl.children_of(pid).first().and_then(|w| w.ended_ns());
        w.or_else(|| tl.get(pid).and_then(|p| p.end).map(|e| e.at_ns))
    });
    let outcome =
        end_or_stuck(obs, pid, Duration::from_secs(5), Duration::from_millis(1500));
    let (writer, writer_pid) = obs.view(|tl| {
        let w = tl.children_of(pid).first().map(|w| (*w).clone());
        (w.clone(), w.map_or(0, |w| w.pid))
    });
    observe!(
        lab,
        "holders",
        "your reader {pid} held write ends of the pipe it reads: {held:?}",
        pid,
        held
    );
    let end = match &outcome {
        Outcome::Ended(e) => Some(*e),
        _ => None,
    };
    let seen = match (&outcome, writer_end) {
        (Outcome::Ended(e), Some(w)) => format!("it ended {} ms after the writer", ms(e.at_ns.saturating_sub(w))),
        (Outcome::Ended(_), None) => "it ended, the writer did not".to_string(),
        (Outcome::Stuck(w) | Outcome::Running(w), _) if writer_end.is_some() => format!(
            "the writer has exited, but your reader still waits: {w:?}; it holds a write \
             end itself: {held:?}"
        ),
        (Outcome::Stuck(w) | Outcome::Running(w), _) => {
            format!("the writer never finished, everything waits: {w:?}")
        }
    };
    let on_time = matches!((&outcome, writer_end), (Outcome::Ended(e), Some(w)) if e.at_ns < w + 2_000_000_000);
    check!(
        lab,
        "reader_sees_eof",
        on_time,
        "the reader ends by itself within 2 s of the writer's exit (seen: {seen})"
    );
    let read = end.map_or_else(|| crate::timeline::io(pid).0, |e| e.rchar);
    check!(
        lab,
        "read_all",
        read >= SIZE,
        "the reader read the whole MiB (rchar: {read} bytes)"
    );
    let reaped = writer.as_ref().is_some_and(|w| w.reaped_by(pid));
    check!(
        lab,
        "reaped",
        reaped,
        "the writer {writer_pid} is reaped by the reader (seen: {reaped})"
    );
    exited_cleanly(lab, end);
}

/// pipe-sigpipe: the checker reads a little, lets the pipe fill, closes it; the producer
/// must still be writing, then end within 2 s with status 0.
pub fn sigpipe(lab: &mut Lab, obs: &mut Observer) {
    let (pid, out) = obs.spawn_with(&[], true);
    let Some(mut out) = out else {
        lab.not_observed("kept_writing", "no pipe to read")
    };
    let mut got = Vec::new();
    let deadline = Deadline::after(Duration::from_secs(3));
    while got.iter().filter(|&&b| b == b'\n').count() < 10
        && readable_by(&out, deadline).unwrap_or(false)
    {
        let mut buf = [0u8; 256];
        match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let lines = got.iter().filter(|&&b| b == b'\n').count();
    // Now stop reading: a producer that goes on writing fills the pipe and blocks.
    let full = obs.until(Duration::from_secs(3), |tl| {
        let p = tl.get(pid).filter(|p| p.running())?;
        let (_, wchar) = crate::timeline::io(pid);
        (p.state == 'S' && wchar >= 60_000).then_some(wchar)
    });
    let running = obs.view(|tl| tl.get(pid).is_some_and(|p| p.running()));
    let wrote = full.unwrap_or(crate::timeline::io(pid).1);
    observe!(lab, "reader", "the checker read {lines} lines, then stopped reading; your producer wrote {wrote} bytes and is {state}", lines, wrote, state = if running { "still running" } else { "gone" });
    check!(
        lab,
        "kept_writing",
        full.is_some(),
        "the producer is still writing when the reader leaves: the pipe is full and it \
         waits in write (seen: {wrote} bytes written, running: {running})"
    );
    drop(out); // the reader leaves
    let end = obs.end_of(pid, Duration::from_secs(2));
    let how =
        end.map_or("still running 2 s later".to_string(), |e| e.status.to_string());
    check!(
        lab,
        "stopped",
        end.is_some(),
        "the producer ends within 2 s of the reader leaving (seen: {how})"
    );
    let sigpipe = end.and_then(|e| e.status.signal()) == Some(Signal::SIGPIPE);
    let why = if sigpipe { ": SIGPIPE's default action" } else { "" };
    check!(
        lab,
        "clean_exit",
        full.is_some() && end.and_then(|e| e.status.code()) == Some(0),
        "it exits with status 0 (seen: {how}{why})"
    );
}
