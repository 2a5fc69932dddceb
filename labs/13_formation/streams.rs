//! The manager's output streams: one pipe for each process's stdout and one for its
//! stderr, read as bytes arrive and printed as whole lines, each with the time and the
//! process's name (`  0.012 web.1    | GET /`). A line is printed only once its
//! newline has come, so lines of different processes never tear or mix, however long.

use crate::events::Event;
use nix::errno::Errno;
use nix::unistd::read;
use proclab::clock::now_ns;
use proclab::fdio;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

/// A line longer than this is printed in pieces, each marked as cut.
const MAX_LINE: usize = 1 << 16;

struct Stream {
    name: String,
    mark: char,
    fd: OwnedFd,
    buf: Vec<u8>,
}

/// Every open stream, and the output not yet written.
pub struct Streams {
    open: Vec<Stream>,
    width: usize,
    t0: u64,
    out: Vec<u8>,
    chunk: Vec<u8>,
    /// False only when a test removes line assembly: each read is printed as it came.
    assemble: bool,
}

impl Streams {
    pub fn new(width: usize, t0: u64, assemble: bool) -> Streams {
        let chunk = vec![0; if assemble { MAX_LINE } else { 4096 }];
        Streams { open: Vec::new(), width, t0, out: Vec::new(), chunk, assemble }
    }

    /// Read `name`'s stdout and stderr from now on (the read ends, non-blocking).
    pub fn add(&mut self, name: &str, stdout: OwnedFd, stderr: OwnedFd) {
        for (fd, mark) in [(stdout, '|'), (stderr, '!')] {
            let flags = nix::fcntl::OFlag::O_NONBLOCK;
            let _ = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags));
            self.open.push(Stream { name: name.into(), mark, fd, buf: Vec::new() });
        }
    }

    /// The descriptors to poll, in the order `read_ready` expects.
    pub fn fds(&self) -> Vec<RawFd> {
        self.open.iter().map(|s| s.fd.as_raw_fd()).collect()
    }

    /// Read once from each stream whose `ready` flag is set (as poll said).
    pub fn read_ready(&mut self, ready: &[bool]) {
        for i in (0..self.open.len()).rev() {
            if ready.get(i) == Some(&true) && self.read_once(i) == Some(0) {
                self.open.remove(i); // end of file: every copy of the write end is closed
            }
        }
    }

    /// Everything `name` wrote before it died, so that its lines come before the
    /// manager's line about its end.
    pub fn drain(&mut self, name: &str) {
        for i in (0..self.open.len()).rev() {
            if self.open[i].name == name {
                // Until nothing is left for now (a child of its may hold the pipe),
                // and at most 64 reads: a writer that never stops is not waited for.
                for _ in 0..64 {
                    if !matches!(self.read_once(i), Some(n) if n > 0) {
                        break;
                    }
                }
            }
        }
    }

    /// One read(2) from stream `i`: the bytes it brought (0 at end of file), or
    /// None when there was nothing to read for now.
    fn read_once(&mut self, i: usize) -> Option<usize> {
        let n = match read(self.open[i].fd.as_fd(), &mut self.chunk) {
            Ok(n) => n,
            Err(Errno::EAGAIN | Errno::EINTR) => return None, // nothing more yet
            Err(_) => 0,
        };
        if self.assemble {
            self.complete(i, n);
        } else {
            let (name, mark) = (self.open[i].name.clone(), self.open[i].mark);
            self.prefix(&name, mark); // tests only: print each read as it came
            self.out.extend_from_slice(&self.chunk[..n]);
        }
        Some(n)
    }

    // ANCHOR: lines
    /// Add what read(2) brought (`n` bytes; 0 at end of file) to stream `i`'s
    /// buffer, and print each line it completed: whole, with its name.
    fn complete(&mut self, i: usize, n: usize) {
        let s = &mut self.open[i];
        s.buf.extend_from_slice(&self.chunk[..n]);
        let mut lines = Vec::new();
        while let Some(end) = s.buf.iter().position(|&b| b == b'\n') {
            lines.push(s.buf.drain(..=end).collect::<Vec<u8>>()); // a whole line
        }
        if (n == 0 && !s.buf.is_empty()) || s.buf.len() >= MAX_LINE {
            lines.push(std::mem::take(&mut s.buf)); // at EOF, or too long: cut
        }
        let (name, mark) = (s.name.clone(), s.mark);
        for line in lines {
            self.line(&name, mark, &line);
        }
    }
    // ANCHOR_END: lines

    fn prefix(&mut self, name: &str, mark: char) {
        let t = now_ns().saturating_sub(self.t0) as f64 / 1e9;
        let w = self.width;
        self.out
            .extend_from_slice(format!("{t:7.3} {name:<w$} {mark} ").as_bytes());
    }

    fn line(&mut self, name: &str, mark: char, line: &[u8]) {
        self.prefix(name, mark);
        self.out.extend_from_slice(line);
        if line.last() != Some(&b'\n') {
            self.out.extend_from_slice(b" [cut: no newline]\n");
        }
    }

    /// A line of the manager's own, as `system`.
    pub fn system(&mut self, event: &Event) {
        self.line("system", '|', format!("{event}\n").as_bytes());
    }

    /// Write what is pending to stdout (the manager is its only writer).
    pub fn flush(&mut self) {
        let _ = fdio::write_all(std::io::stdout(), &self.out);
        self.out.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_printed_once_it_is_whole_and_a_cut_end_is_marked() {
        let (r1, w1) = nix::unistd::pipe().unwrap();
        let (r2, w2) = nix::unistd::pipe().unwrap();
        let mut s = Streams::new(6, now_ns(), true);
        s.add("web.1", r1, r2);
        fdio::write_all(&w1, b"GET / fr").unwrap();
        s.read_ready(&[true, false]);
        assert!(s.out.is_empty(), "half a line is kept back");
        fdio::write_all(&w1, b"om 127.0.0.1\nnext").unwrap();
        fdio::write_all(&w2, b"oops\n").unwrap();
        s.read_ready(&[true, true]);
        let out = String::from_utf8(std::mem::take(&mut s.out)).unwrap();
        let lines: Vec<&str> = out.lines().map(|l| &l[8..]).collect();
        assert_eq!(lines, ["web.1  ! oops", "web.1  | GET / from 127.0.0.1"]);
        drop(w1);
        s.drain("web.1");
        let out = String::from_utf8(std::mem::take(&mut s.out)).unwrap();
        assert!(out.ends_with("web.1  | next [cut: no newline]\n"), "{out:?}");
    }
}
