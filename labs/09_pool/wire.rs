//! Messages on a pipe. A pipe is a byte stream with no boundaries: each message starts with
//! its length, so the reader knows where it ends, however the bytes were split by read(2).
//! Everything here is async-signal-safe and allocation-free: a worker uses it after fork.

use super::task::Task;
use nix::errno::Errno;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

pub const TASK: u32 = 1;
pub const RESULT: u32 = 2;
pub const STOP: u32 = 3;
const BODY: usize = 32;
pub const FRAME: usize = 4 + BODY;

/// One message: a task (master to worker), a result (worker to master) or a STOP pill.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct Frame {
    pub kind: u32,
    pub attempt: u32,
    pub id: u64,
    /// The task's input, or the result's value.
    pub value: u64,
    pub rounds: u32,
    pub mode: u32,
}

impl Frame {
    pub fn task(id: usize, attempt: u32, t: &Task) -> Frame {
        Frame {
            kind: TASK,
            attempt,
            id: id as u64,
            value: t.x,
            rounds: t.rounds,
            mode: t.mode as u32,
        }
    }
    pub fn result(id: u64, attempt: u32, value: u64) -> Frame {
        Frame { kind: RESULT, attempt, id, value, ..Frame::default() }
    }
    pub fn stop() -> Frame {
        Frame { kind: STOP, ..Frame::default() }
    }
    /// The length prefix, then the struct's bytes as they are in memory (both ends are the
    /// same program on the same machine).
    pub fn encode(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&(BODY as u32).to_ne_bytes());
        // SAFETY: Frame is repr(C), 32 bytes of integers without padding.
        let bytes: &[u8; BODY] = unsafe { &*(self as *const Frame).cast() };
        out[4..FRAME].copy_from_slice(bytes);
    }
    fn decode(body: &[u8]) -> Frame {
        assert!(body.len() >= BODY);
        // SAFETY: BODY bytes are there; every bit pattern is a valid Frame (integers only).
        unsafe { std::ptr::read_unaligned(body.as_ptr().cast()) }
    }
}

/// A fixed receive buffer that cuts a byte stream into frames. No heap: a worker keeps one
/// on its stack after fork.
pub struct Frames {
    buf: [u8; 4096],
    start: usize,
    end: usize,
}

impl Frames {
    pub const fn new() -> Frames {
        Frames { buf: [0; 4096], start: 0, end: 0 }
    }

    /// One read(2) from `fd` into the free space: bytes read, 0 at EOF, -1 on error.
    pub fn fill(&mut self, fd: impl AsFd) -> isize {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match nix::unistd::read(fd.as_fd(), &mut self.buf[self.end..]) {
                Err(Errno::EINTR) => continue,
                Err(_) => return -1,
                Ok(n) => {
                    self.end += n;
                    return n as isize;
                }
            }
        }
    }

    /// The bytes waiting, and the length prefix of the first frame if all 4 bytes are there.
    fn head(&self) -> (&[u8], Option<usize>) {
        let have = &self.buf[self.start..self.end];
        let len = (have.len() >= 4).then(|| {
            u32::from_ne_bytes([have[0], have[1], have[2], have[3]]) as usize
        });
        (have, len)
    }

    /// True if a whole frame is waiting in the buffer.
    pub fn has_frame(&self) -> bool {
        let (have, len) = self.head();
        len.is_some_and(|len| have.len() >= 4 + len)
    }

    /// The next whole frame in the buffer, if there is one. A bad length gives kind 0.
    pub fn pop(&mut self) -> Option<Frame> {
        let (have, len) = self.head();
        let len = len?;
        if len != BODY {
            self.start = self.end; // not our protocol: drop it, report a bad frame
            return Some(Frame::default());
        }
        if have.len() < 4 + len {
            return None; // the rest of this frame is still in the pipe
        }
        let f = Frame::decode(&have[4..4 + len]);
        self.start += 4 + len;
        Some(f)
    }
}

impl Default for Frames {
    fn default() -> Self {
        Self::new()
    }
}

/// Wake up when `fd` has something to read (or hit EOF): one entry of poll(2)'s set.
pub fn pollin(fd: &OwnedFd) -> libc::pollfd {
    libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }
}

/// The bounded queue's message: 16 bytes, a length (12), a kind (DATA or PILL) and a sequence
/// number, little-endian.
pub const MSG: usize = 16;
pub const DATA: u32 = 1;
pub const PILL: u32 = 2;

pub fn message(kind: u32, seq: u64) -> [u8; MSG] {
    let mut m = [0u8; MSG];
    m[0..4].copy_from_slice(&12u32.to_le_bytes()); // length of what follows
    m[4..8].copy_from_slice(&kind.to_le_bytes());
    m[8..16].copy_from_slice(&seq.to_le_bytes());
    m
}

/// A queue message's kind and sequence number (from its first 16 bytes).
pub fn kind_seq(m: &[u8]) -> (u32, u64) {
    let kind = u32::from_le_bytes([m[4], m[5], m[6], m[7]]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&m[8..MSG]);
    (kind, u64::from_le_bytes(seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proclab::fdio::write_all;

    #[test]
    fn frames_come_out_whole_however_the_bytes_were_split() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let mut bytes = [0u8; 2 * FRAME];
        let t = Task { x: 5, rounds: 1, mode: super::super::task::Mode::Slow };
        Frame::task(3, 1, &t).encode(&mut bytes[..FRAME]);
        Frame::stop().encode(&mut bytes[FRAME..]);
        let mut inbox = Frames::new();
        write_all(&w, &bytes[..FRAME - 5]).unwrap(); // a frame cut short
        assert_eq!(inbox.fill(&r), (FRAME - 5) as isize);
        assert!(!inbox.has_frame() && inbox.pop().is_none());
        write_all(&w, &bytes[FRAME - 5..]).unwrap(); // its end and a whole one
        assert!(inbox.fill(&r) > 0 && inbox.has_frame());
        let f = inbox.pop().unwrap();
        assert_eq!((f.kind, f.id, f.attempt, f.value, f.mode), (TASK, 3, 1, 5, 1));
        assert_eq!(inbox.pop().map(|f| f.kind), Some(STOP));
        assert!(inbox.pop().is_none());
        drop(w);
        assert_eq!(inbox.fill(&r), 0, "end of file");
    }

    #[test]
    fn a_bad_length_is_a_bad_frame() {
        let mut inbox = Frames::new();
        let (r, w) = nix::unistd::pipe().expect("pipe");
        write_all(&w, &7u32.to_ne_bytes()).unwrap();
        inbox.fill(&r);
        assert_eq!(inbox.pop().map(|f| f.kind), Some(0));
    }

    #[test]
    fn a_queue_message_is_16_bytes_length_kind_sequence() {
        let m = message(PILL, 0x0102);
        assert_eq!(m.len(), MSG);
        assert_eq!(&m[..4], &12u32.to_le_bytes());
        assert_eq!(kind_seq(&m), (PILL, 0x0102));
    }
}
