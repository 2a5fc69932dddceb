//! Section 2: `read` returns 0 (EOF) only when every write end, in every process, is
//! closed. A reader that keeps its own copy of the write end waits for itself forever:
//! the watchdog finds it asleep in `pipe_read` and kills it. The fixed reader sees EOF.

use crate::args::Args;
use crate::watch::wait_or_break;
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::{getpid, pipe, read, ForkResult};
use proclab::_exit;
use proclab::fdio::write_all;
use proclab::{check, cleanup, flush_stdout, lifeline, observe, say, Lab, OrDie};
use proclab::{procfacts, State};
use std::os::fd::OwnedFd;
use std::time::Duration;

pub fn run(lab: &mut Lab, args: &Args) {
    // Tests only: the buggy reader closes its end too; the parent keeps its own.
    let no_forgotten_end = proclab::test_removes("no_forgotten_end");
    let parent_keeps_end = proclab::test_removes("parent_keeps_write_end");
    let parent = getpid().as_raw();
    let deadline = Duration::from_millis(args.deadline_ms);
    let mut buf = vec![0u8; 4096]; // the reader's buffer, allocated before fork
    let mut held = [false; 2];
    for (i, closes_own) in [false, true].into_iter().enumerate() {
        let (rx, tx) = pipe().or_die("pipe");
        flush_stdout();
        // SAFETY: the child only reads, closes, calls say! and _exits.
        let child = match unsafe { cleanup::fork_tracked() } {
            ForkResult::Child => {
                lifeline::die_with_parent(parent);
                reader(rx, tx, closes_own || no_forgotten_end, &mut buf)
            }
            ForkResult::Parent { child } => child,
        };
        drop(rx);
        write_all(&tx, b"hello, then nothing more").or_die("write");
        // The parent is done writing: it closes its write end (tests only: it keeps it).
        let kept = if parent_keeps_end {
            Some(tx)
        } else {
            drop(tx);
            None
        };
        // Where the reader is now, before any watchdog: under --step the prompt comes
        // while it is so (asleep in pipe_read, or a zombie after EOF).
        let (w, look) = (child.as_raw(), deadline.max(Duration::from_secs(2)));
        let now = procfacts::poll_until(look, || match procfacts::state(w)? {
            'Z' => Some(String::new()),
            'S' => procfacts::wchan(w).filter(|c| c.contains("pipe_read")),
            _ => None,
        });
        let state = State::of(w);
        let wchan_now = now.unwrap_or_default();
        observe!(
            lab,
            "reader",
            "reader {pid}, once the parent is done writing: {state} {wchan_now}",
            pid = w,
            ppid = parent,
            forked = true,
            state,
            wchan = &wchan_now,
            reader_closes_write_end = closes_own
        );
        let waited = wait_or_break(&[child], "pipe_read", deadline);
        drop(kept);

        let status = waited.statuses[0];
        let (state, wchan) = match waited.stuck.first() {
            Some(s) => (s.state, s.wchan.clone()),
            None => (State('?'), String::new()),
        };
        let stuck = !waited.stuck.is_empty();
        let deadline_ms = args.deadline_ms;
        let what = if stuck {
            format!(
                "still blocked {deadline_ms} ms after the last writer closed: \
                 {state}, wchan {wchan}; the watchdog ended it"
            )
        } else if status.code() == Some(0) {
            "saw EOF and exited by itself".to_string()
        } else {
            "was not seen asleep in pipe_read".to_string()
        };
        observe!(
            lab,
            "eof",
            "reader {pid} {what}: {status}",
            pid = w,
            sent = stuck.then_some("SIGKILL"),
            reader_closes_write_end = closes_own,
            watchdog_fired = waited.fired,
            stuck,
            state,
            wchan,
            status,
            deadline_ms
        );
        held[i] = if closes_own {
            !stuck && status.code() == Some(0)
        } else {
            waited.fired && stuck && status.signal() == Some(Signal::SIGKILL)
        };
    }
    check!(
        lab,
        "forgotten_write_end_hangs",
        held[0],
        "a reader holding its own copy of the write end never sees EOF: the watchdog \
         found it asleep in pipe_read and killed it"
    );
    check!(
        lab,
        "closed_write_end_sees_eof",
        held[1],
        "once the reader closes its copy too, read returns 0 (EOF) and it exits by itself"
    );
}

// ANCHOR: reader
/// A reader child: reads until EOF, then exits 0. Without `closes_own` it is
/// the classic bug: its own copy of the write end keeps the pipe open, so EOF
/// never comes.
fn reader(rx: OwnedFd, tx: OwnedFd, closes_own: bool, buf: &mut [u8]) -> ! {
    if closes_own {
        drop(tx); // close(2): now the parent's end is the only write end
    } else {
        std::mem::forget(tx); // the bug: the write end stays open in the reader
    }
    let mut total = 0;
    loop {
        match read(&rx, buf) {
            Ok(0) => break, // EOF
            Ok(n) if total == 0 => {
                total += n;
                say!("read {n} bytes; waiting for more or EOF");
            }
            Ok(n) => total += n,
            Err(Errno::EINTR) => {}
            Err(_) => _exit(1),
        }
    }
    say!("EOF after {total} bytes");
    _exit(0)
}
// ANCHOR_END: reader
