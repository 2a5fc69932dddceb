//! The end of a check, on every way out: kill every process below the observer and reap
//! it (`kill_tree`), and the observer's lifeline (`lifeline`): its stdin is a pipe from
//! `lab check`, so when that process dies, even by SIGKILL, the tree is killed at once.

use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use proclab::Deadline;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

/// Kill every descendant of `me` (found by a full scan of /proc, so that nothing that
/// escaped the last sample survives) and reap them, until no child is left (at most 3 s).
pub fn kill_tree(me: i32) {
    let deadline = Deadline::after(Duration::from_secs(3));
    loop {
        let mut parent = std::collections::HashMap::new();
        if let Ok(all) = procfs::process::all_processes() {
            for p in all.flatten() {
                if let Ok(s) = p.stat() {
                    parent.insert(s.pid, s.ppid);
                }
            }
        }
        let mut ours = HashSet::from([me]);
        let mut grew = true;
        while grew {
            grew = false;
            for (&pid, ppid) in &parent {
                if ours.contains(ppid) && ours.insert(pid) {
                    grew = true;
                }
            }
        }
        ours.remove(&me);
        for &pid in &ours {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let no_children = loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break false,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(_) => break true,
            }
        };
        if (ours.is_empty() && no_children) || deadline.expired() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The observer's lifeline: its stdin is a pipe that only `lab check` writes to. End of
/// file (that process died, even by SIGKILL), SIGINT or SIGTERM: kill the tree and leave.
pub fn lifeline(me: i32, held: SigSet, dir: PathBuf) {
    use nix::sys::signalfd::SignalFd;
    use std::os::fd::AsRawFd;
    let flags = nix::sys::signalfd::SfdFlags::SFD_CLOEXEC;
    let Ok(sfd) = SignalFd::with_flags(&held, flags) else { return };
    let piped = nix::sys::stat::fstat(std::io::stdin())
        .is_ok_and(|s| s.st_mode & libc::S_IFMT == libc::S_IFIFO);
    let mut fds = vec![libc::pollfd {
        fd: sfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    if piped {
        fds.push(libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 });
    }
    let sig = loop {
        // SAFETY: `fds` is a valid array of pollfds for the whole call.
        let n = unsafe {
            libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1000)
        };
        if n <= 0 {
            continue;
        }
        if fds[0].revents != 0 {
            break sfd.read_signal().ok().flatten().map(|s| s.ssi_signo as i32);
        }
        let mut b = [0u8; 64];
        if fds.len() > 1
            && fds[1].revents != 0
            && !matches!(nix::unistd::read(std::io::stdin(), &mut b), Ok(n) if n > 0)
        {
            break None;
        }
    };
    kill_tree(me);
    proclab::cleanup::cleanup();
    let _ = std::fs::remove_dir_all(&dir);
    let what = sig.map_or("lab check ended".to_string(), |s| format!("signal {s}"));
    let msg = format!(
        "\nlab check: stopped ({what}): every process of the exercise was killed\n"
    );
    proclab::narrate::write_all_fd(2, msg.as_bytes());
    match sig {
        Some(s) => {
            // Die of the same signal, as a shell expects of an interrupted command.
            // SAFETY: signal, sigprocmask and raise on this thread only.
            unsafe {
                libc::signal(s, libc::SIG_DFL);
                let _ = nix::sys::signal::pthread_sigmask(
                    SigmaskHow::SIG_UNBLOCK,
                    Some(&held),
                    None,
                );
                libc::raise(s);
            }
            std::process::exit(1)
        }
        None => std::process::exit(1),
    }
}
