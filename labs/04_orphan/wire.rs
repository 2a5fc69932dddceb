//! The orphan's reports to the lab: one 24-byte write (less than PIPE_BUF, so atomic) of
//! its pid, what `getppid()` said, and that parent's command name from /proc.

use nix::errno::Errno;
use nix::unistd::write;
use proclab::narrate::StackBuf;
use proclab::{die, fdio, Deadline};
use std::fmt::Write as _;
use std::os::fd::OwnedFd;
use std::time::Duration;

/// One report from the orphan: its pid, what getppid() said, and that parent's comm.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub pid: i32,
    pub ppid: i32,
    pub comm: String,
}

/// In the orphan: read /proc/PPID/comm into `out` with open/read/close only
/// (async-signal-safe).
fn comm_of(ppid: i32, out: &mut [u8; 16]) {
    let mut path = StackBuf::new();
    let _ = write!(path, "/proc/{ppid}/comm\0");
    // SAFETY: path is NUL-terminated; open/read/close are async-signal-safe.
    unsafe {
        let fd = libc::open(
            path.as_bytes().as_ptr().cast(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd >= 0 {
            let n = libc::read(fd, out.as_mut_ptr().cast(), out.len());
            if n > 0 && out[n as usize - 1] == b'\n' {
                out[n as usize - 1] = 0;
            }
            libc::close(fd);
        }
    }
}

/// In the orphan: send (pid, ppid, comm of ppid) to the lab in one write.
pub fn send_report(fd: &OwnedFd, ppid: i32) {
    let mut rec = [0u8; 24];
    // SAFETY: getpid has no preconditions.
    rec[..4].copy_from_slice(&unsafe { libc::getpid() }.to_ne_bytes());
    rec[4..8].copy_from_slice(&ppid.to_ne_bytes());
    let mut comm = [0u8; 16];
    comm_of(ppid, &mut comm);
    rec[8..].copy_from_slice(&comm);
    let _ = write(fd, &rec);
}

/// In the lab: the next report, or None at end of file (the orphan has ended) or after
/// 5 s of lab time.
pub fn next_report(fd: &OwnedFd) -> Option<Report> {
    let mut rec = [0u8; 24];
    let by = Deadline::after(Duration::from_secs(5));
    match fdio::read_full_by(fd, &mut rec, by) {
        Ok(24) => {}
        Ok(_) | Err(Errno::ETIMEDOUT) => return None,
        Err(e) => die("read", e),
    }
    let int = |r: &[u8]| i32::from_ne_bytes([r[0], r[1], r[2], r[3]]);
    let comm = &rec[8..];
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    Some(Report {
        pid: int(&rec[..4]),
        ppid: int(&rec[4..8]),
        comm: String::from_utf8_lossy(&comm[..end]).into_owned(),
    })
}
