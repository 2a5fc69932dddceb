//! The janitor: a process the lab starts first, which outlives it by a moment. It holds
//! the lifeline's read end; when the lab is gone (even by SIGKILL, when no handler of
//! the lab's runs) it kills every process left in the lab's network namespaces (nginx's
//! workers hold no lifeline of ours), deletes the namespaces, and removes the lab's
//! files. `sweep` is also how the lab cleans up after itself, and after a dead lab.

use crate::exec::{exe, pass_fd, Strings};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpid, ForkResult, Pid};
use proclab::lifeline::Lifeline;
use proclab::OrDie;
use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

/// Where `ip netns` keeps its namespaces (a bind mount of each, named).
pub const NETNS_DIR: &str = "/run/netns";

/// The prefix of everything the lab with pid `lab` makes: namespaces, files, prefixes.
pub fn prefix(lab: i32) -> String {
    format!("proclab-formation-{lab}-")
}

/// Start the janitor: fork, exec `formation janitor LAB` with the lifeline's read end
/// as fd 3, its own process group (a Ctrl-C to the lab's group does not reach it) and
/// stdin, stdout and stderr on /dev/null (it never holds the lab's output open).
pub fn start(lifeline: &Lifeline) -> Pid {
    let me = getpid().as_raw();
    let av = Strings::new([exe(), "janitor".into(), me.to_string()]);
    let life = lifeline.fd();
    proclab::flush_stdout();
    // SAFETY: the child makes async-signal-safe calls only, then execs.
    match unsafe { nix::unistd::fork() }.or_die("fork") {
        ForkResult::Child => unsafe {
            lifeline.hold();
            libc::setpgid(0, 0);
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            pass_fd(life, 3);
            libc::execv(av.first(), av.array());
            libc::_exit(127)
        },
        ForkResult::Parent { child } => child,
    }
}

/// `formation janitor LAB`: wait for the lab's end, then sweep twice (a moment apart:
/// an `ip` the lab had started may finish a namespace after the first sweep).
pub fn main(args: &[String]) -> ! {
    let lab: i32 = args.first().and_then(|a| a.parse().ok()).unwrap_or(0);
    // SAFETY: ignoring SIGINT has no preconditions.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    while !crate::programs::readable(3, -1) {} // POLLHUP: the lab is gone
    if lab > 0 {
        sweep(lab);
        std::thread::sleep(Duration::from_millis(100));
        sweep(lab);
    }
    std::process::exit(0)
}

/// What a sweep removed.
#[derive(Default, Debug, Clone, Copy, serde::Serialize)]
pub struct Swept {
    pub namespaces: usize,
    pub processes: usize,
    pub files: usize,
}

impl std::fmt::Display for Swept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Swept { namespaces, processes, files } = self;
        write!(f, "{namespaces} namespaces, {processes} processes, {files} files")
    }
}

/// The lab's namespaces: (name, the namespace's inode).
pub fn namespaces(lab: i32) -> Vec<(String, u64)> {
    let p = prefix(lab);
    let Ok(rd) = std::fs::read_dir(NETNS_DIR) else { return Vec::new() };
    rd.flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&p))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().map_or(0, |m| m.ino()),
            )
        })
        .collect()
}

/// Live processes (or threads) in the network namespace with inode `ino`.
pub fn in_netns(ino: u64) -> Vec<i32> {
    let want = format!("net:[{ino}]");
    let Ok(rd) = std::fs::read_dir("/proc") else { return Vec::new() };
    rd.flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_link(format!("/proc/{p}/ns/net"))
                .is_ok_and(|l| l.to_string_lossy() == want)
                && proclab::procfacts::state(*p).is_some_and(|s| s != 'Z')
        })
        .collect()
}

/// Kill every process in the lab's namespaces, delete the namespaces (what `ip netns
/// delete` does: detach the bind mount, unlink the name), remove the lab's files.
pub fn sweep(lab: i32) -> Swept {
    let mut s = Swept::default();
    for (name, ino) in namespaces(lab) {
        let pids = in_netns(ino);
        s.processes += pids.len();
        for &p in &pids {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        let until = Instant::now() + Duration::from_millis(500);
        while !in_netns(ino).is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        let path = CString::new(format!("{NETNS_DIR}/{name}")).expect("no NUL");
        // SAFETY: umount2 and unlink on a path we own; a failure leaves it for later.
        unsafe {
            libc::umount2(path.as_ptr(), libc::MNT_DETACH);
            s.namespaces += usize::from(libc::unlink(path.as_ptr()) == 0);
        }
    }
    let p = prefix(lab);
    for dir in ["/dev/shm", "/tmp"] {
        let Ok(rd) = std::fs::read_dir(dir) else { continue };
        for e in
            rd.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(&p))
        {
            let gone = std::fs::remove_file(e.path())
                .or_else(|_| std::fs::remove_dir_all(e.path()));
            s.files += usize::from(gone.is_ok());
        }
    }
    s
}

/// Sweep what labs that are no longer running left behind (a lab killed before its
/// janitor could act, or whose janitor was killed too): (their pid, what went).
pub fn stale() -> Vec<(i32, Swept)> {
    let mut labs: Vec<i32> = Vec::new();
    for dir in [NETNS_DIR, "/dev/shm", "/tmp"] {
        let Ok(rd) = std::fs::read_dir(dir) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix("proclab-formation-")
                .and_then(|r| r.split('-').next()?.parse().ok());
            labs.extend(pid.filter(|p| !labs.contains(p)));
        }
    }
    let alive =
        |p: i32| proclab::procfacts::comm(p).is_some_and(|c| c == "formation");
    labs.into_iter().filter(|&p| !alive(p)).map(|p| (p, sweep(p))).collect()
}
