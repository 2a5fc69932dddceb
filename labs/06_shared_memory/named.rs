//! Section 2: named POSIX shared memory. `shm_open` creates a name in /dev/shm (a
//! tmpfs), `ftruncate` sizes it, `mmap(MAP_SHARED)` maps it; a process that inherited
//! no mapping (it `exec`ed) opens it by name. `shm_unlink` removes the name, not the
//! memory still mapped.

use crate::args::{peer_command, Args};
use crate::children::reap;
use nix::fcntl::OFlag;
use nix::sys::mman::{mmap, munmap, shm_open, shm_unlink, MapFlags, ProtFlags};
use nix::sys::stat::Mode;
use nix::unistd::{execv, ftruncate, getpid, ForkResult};
use proclab::_exit;
use proclab::{check, cleanup, flush_stdout, lifeline, narrate, observe, say};
use proclab::{Lab, OrDie};
use std::num::NonZeroUsize;
use std::os::fd::OwnedFd;
use std::ptr::{self, NonNull};
use std::time::Duration;

const SEG: usize = 4096; // size of the segment
const MSG_AT: usize = 0; // the creator's message
const ECHO_AT: usize = 256; // what the peer read, copied back
const PEER_AT: usize = 512; // the peer's pid and what its maps showed

pub fn run(lab: &mut Lab, args: &Args) {
    let keep_name = proclab::test_removes("no_shm_unlink"); // tests only: no unlink
    let me = getpid();
    let name = format!("/proclab-shm-{me}-named");
    let path = format!("/dev/shm{name}");
    // ANCHOR: named
    cleanup::track_shm(&name); // unlinked on every way out, even after a SIGKILL
    let fd = shm_open(
        name.as_str(),
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
        Mode::S_IRUSR | Mode::S_IWUSR,
    )
    .or_die("shm_open"); // creates /dev/shm/proclab-shm-PID-named
    ftruncate(&fd, SEG as i64).or_die("ftruncate"); // a new segment is 0 bytes long
    let seg = map_segment(&fd, MapFlags::MAP_SHARED);
    let message = format!("hello from {me}");
    // SAFETY: the segment is SEG bytes; the message is shorter than ECHO_AT.
    unsafe { ptr::copy_nonoverlapping(message.as_ptr(), seg, message.len()) };
    // ANCHOR_END: named
    let meta = std::fs::metadata(&path).ok();
    let size = meta.as_ref().map(|m| m.len());
    let bytes = size.unwrap_or(0);
    observe!(
        lab,
        "shm_entry",
        "{path} exists, {bytes} bytes",
        phase = "exists",
        name,
        path,
        exists = meta.is_some(),
        size
    );
    if !lab.stepping() && args.linger_ms > 0 {
        let ms = args.linger_ms; // only so that a person can look (or use --step)
        say!(
            "the segment lingers {ms} ms: try `ls -l /dev/shm` in another terminal"
        );
        std::thread::sleep(Duration::from_millis(ms));
    }

    let (exe, argv) = peer_command(&name, lab.json()); // made before fork
    flush_stdout();
    // ANCHOR: peer_exec
    // SAFETY: the child only calls execv (async-signal-safe), strings made before.
    let peer = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            lifeline::die_with_parent(me.as_raw()); // kept across exec
            let _ = execv(&exe, &argv); // a new program: no mapping survives exec
            _exit(127)
        }
        ForkResult::Parent { child } => child,
    };
    let status = reap(peer);
    // ANCHOR_END: peer_exec
    // SAFETY: the segment is SEG bytes, written by the peer before it exited.
    let (echo, pid_in_segment, maps_before) = unsafe {
        let echo = std::slice::from_raw_parts(seg.add(ECHO_AT), message.len());
        let p = seg.add(PEER_AT).cast::<u32>();
        (String::from_utf8_lossy(echo), p.read_volatile(), p.add(1).read_volatile())
    };
    observe!(
        lab,
        "peer",
        "peer {pid} (exec'd, {maps_before} mappings of the segment in its \
         /proc/self/maps before shm_open) read {echo:?} and wrote it back; it {status}",
        pid = peer.as_raw(),
        ppid = me.as_raw(),
        forked = true,
        exec = "shm --peer",
        pid_in_segment,
        maps_before,
        echo,
        message,
        status
    );
    check!(
        lab,
        "opened_by_name",
        status.code() == Some(0)
            && echo == message
            && pid_in_segment == peer.as_raw() as u32
            && maps_before == 0,
        "a process that inherited no mapping opened the segment by name and shared \
         its bytes both ways"
    );

    // ANCHOR: unlink
    if !keep_name {
        shm_unlink(name.as_str()).or_die("shm_unlink"); // the name; still mapped
    }
    let gone = !std::path::Path::new(&path).exists(); // read before any cleanup
    if gone {
        cleanup::forget_shm(&name); // else the lab's cleanup still unlinks it
    }
    // SAFETY: the mapping is still valid after the name is gone.
    let still = unsafe { std::slice::from_raw_parts(seg, message.len()) };
    let still = still == message.as_bytes();
    // ANCHOR_END: unlink
    // SAFETY: no pointer into the segment is used after this.
    unsafe { munmap(NonNull::new(seg.cast()).expect("mapped"), SEG) }
        .or_die("munmap");
    drop(fd);
    let now = if gone { "is gone" } else { "still exists" };
    observe!(
        lab,
        "shm_entry",
        "after shm_unlink {path} {now}; the parent's mapping still reads \
         {message:?}: {still}",
        phase = "unlinked",
        name,
        path,
        exists = !gone,
        mapping_still_readable = still
    );
    check!(
        lab,
        "unlink_removes_entry",
        meta.is_some() && gone && still,
        "the /dev/shm entry existed while the segment was named and shm_unlink \
         removed it (mapped memory stays until munmap)"
    );
}

/// Map a named segment's SEG bytes (`flags`: MAP_SHARED). Returns its first byte.
fn map_segment(fd: &OwnedFd, flags: MapFlags) -> *mut u8 {
    let len = NonZeroUsize::new(SEG).expect("non-zero");
    let rw = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
    // SAFETY: a new mapping of a file we opened; nothing else refers to it yet.
    unsafe { mmap(None, len, rw, flags, fd, 0) }
        .or_die("mmap")
        .cast::<u8>()
        .as_ptr()
}

/// The exec'd peer: a fresh program that inherited no mapping. It opens the
/// segment by name, reads the creator's message, writes it back with its pid.
// ANCHOR: peer
pub fn peer(name: &str, quiet: bool) -> ! {
    narrate::set_quiet(quiet);
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let me = name.trim_start_matches('/');
    let before = maps.lines().filter(|l| l.contains(me)).count() as u32;
    // By name, without O_CREAT: it must exist.
    let fd = shm_open(name, OFlag::O_RDWR, Mode::empty()).or_die("shm_open");
    let mut flags = MapFlags::MAP_SHARED; // the creator sees what we write
    if proclab::test_removes("peer_map_private") {
        flags = MapFlags::MAP_PRIVATE; // tests only: a copy nobody else sees
    }
    let seg = map_segment(&fd, flags);
    // SAFETY: the segment is SEG bytes; the message is shorter than ECHO_AT.
    unsafe {
        let msg = std::slice::from_raw_parts(seg.add(MSG_AT), ECHO_AT);
        let len = msg.iter().position(|&b| b == 0).unwrap_or(0);
        let text = std::str::from_utf8(&msg[..len]).unwrap_or("?");
        say!("opened {name} by name; it says {text:?}");
        ptr::copy_nonoverlapping(seg.add(MSG_AT), seg.add(ECHO_AT), len);
        let p = seg.add(PEER_AT).cast::<u32>();
        p.write_volatile(std::process::id());
        p.add(1).write_volatile(before);
    }
    std::process::exit(0)
}
// ANCHOR_END: peer
