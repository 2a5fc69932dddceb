//! Section 1: one message from parent to child arrives intact, in many reads, and the
//! child sees EOF once the parent closes the last write end.

use crate::args::Args;
use crate::watch::net;
use nix::errno::Errno;
use nix::sys::wait::waitpid;
use nix::unistd::{getpid, pipe, read, ForkResult};
use proclab::_exit;
use proclab::bytes::{fnv1a, pattern, FNV_OFFSET};
use proclab::fdio::{read_full, write_all};
use proclab::measure::fmt_bytes;
use proclab::Status;
use proclab::{check, cleanup, flush_stdout, lifeline, observe, say, Lab, OrDie};

pub fn run(lab: &mut Lab, args: &Args) {
    let short_write = proclab::test_removes("short_write"); // tests only: half is sent
    let parent = getpid().as_raw();
    let msg = pattern(args.bytes as usize, 1);
    let mut buf = vec![0u8; 64 << 10]; // the child's read buffer, allocated before fork
    let mut report = [0u8; 16]; // the child's length and checksum

    // ANCHOR: oneway
    let (rx, tx) = pipe().or_die("pipe"); // rx = read end, tx = write end
    let (back_rx, back_tx) = pipe().or_die("pipe"); // the child reports on this one
    flush_stdout();
    // SAFETY: the child only reads, writes, closes and _exits (no allocation).
    let child = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            lifeline::die_with_parent(parent); // SIGKILL if the lab dies
            drop((tx, back_rx)); // close(2) our write end, or we never see EOF
            let (mut len, mut sum) = (0u64, FNV_OFFSET);
            loop {
                match read(&rx, &mut buf) {
                    Ok(0) => break, // EOF: every write end is closed
                    Ok(n) => (len, sum) = (len + n as u64, fnv1a(sum, &buf[..n])),
                    Err(Errno::EINTR) => continue,
                    Err(_) => _exit(1),
                }
            }
            say!("read {len} bytes until EOF, checksum {sum:016x}");
            report[..8].copy_from_slice(&len.to_le_bytes());
            report[8..].copy_from_slice(&sum.to_le_bytes());
            let ok = write_all(&back_tx, &report).is_ok(); // 16 bytes: atomic
            _exit(if ok { 0 } else { 1 })
        }
        ForkResult::Parent { child } => child,
    };
    // ANCHOR_END: oneway
    // A child that hangs is killed at 30 s or so: every wait below ends.
    let dog = net(&[child], msg.len() >> 20);
    // ANCHOR: oneway_parent
    drop(rx); // close(2) the parent's read end: only the child reads
    drop(back_tx);
    let sent = if short_write { &msg[..msg.len() / 2] } else { &msg[..] };
    let wrote = write_all(&tx, sent).is_ok(); // sleeps while the pipe is full
    drop(tx); // close(2) the last write end: the child's next read returns 0
    let got = read_full(&back_rx, &mut report).unwrap_or(0);
    let status = Status(waitpid(child, None));
    // ANCHOR_END: oneway_parent
    dog.disarm();
    cleanup::forget(child);

    let (sent_len, sum) = (msg.len() as u64, fnv1a(FNV_OFFSET, &msg));
    let (len, back) = report.split_at(8);
    let recv_len = u64::from_le_bytes(len.try_into().unwrap_or_default());
    let recv = u64::from_le_bytes(back.try_into().unwrap_or_default());
    let size = fmt_bytes(sent_len);
    observe!(
        lab,
        "oneway",
        "parent sent {size} (FNV-1a {sent_sum}); child {child} counted \
         {recv_len} bytes (FNV-1a {recv_sum}); it {status}",
        pid = child.as_raw(),
        ppid = parent,
        forked = true,
        sent_len,
        sent_sum = format!("{sum:016x}"),
        recv_len,
        recv_sum = format!("{recv:016x}"),
        report_bytes = got,
        status
    );
    check!(
        lab,
        "bytes_intact",
        wrote && got == 16 && recv_len == sent_len && recv == sum && status.code() == Some(0),
        "the {sent_len} bytes arrived intact: same length and checksum on both sides"
    );
}
