//! The files the lab's runs share, in /dev/shm.

use nix::unistd::getpid;
use proclab::{cleanup, OrDie};

/// The files a lab's runs share, in /dev/shm, named after the lab's pid: the Procfile
/// the managers read, the queue (a FIFO the lab keeps open for writing), the daemon's
/// PID file. Removed on every way out (the janitor does it after a SIGKILL).
pub struct Files {
    pub procfile: String,
    pub queue: String,
    pub pidfile: String,
    pub jobs: std::fs::File,
}

impl Files {
    pub fn create() -> Files {
        let base = format!("/proclab-formation-{}", getpid());
        let path = |n: &str| format!("/dev/shm{base}-{n}");
        for n in ["Procfile", "queue", "daemon.pid"] {
            cleanup::track_shm(&format!("{base}-{n}"));
        }
        std::fs::write(path("Procfile"), crate::procfile::PROCFILE)
            .or_die("write Procfile");
        let q = path("queue");
        nix::unistd::mkfifo(
            q.as_str(),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .or_die("mkfifo");
        // Read and write: opening never blocks, and the queue never reads as closed.
        let jobs = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&q)
            .or_die("open queue");
        Files {
            procfile: path("Procfile"),
            queue: q,
            pidfile: path("daemon.pid"),
            jobs,
        }
    }

    /// Remove them (the normal end).
    pub fn remove(self) {
        for p in [&self.procfile, &self.queue, &self.pidfile] {
            let _ = std::fs::remove_file(p);
            cleanup::forget_shm(p.trim_start_matches("/dev/shm"));
        }
    }
}
