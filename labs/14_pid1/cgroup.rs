//! Plumbing: the pids cgroup of part 8. Where the hierarchy is (cgroup v1 with the
//! pids controller, or cgroup v2 with pids enabled for the children of its root), one
//! cgroup of the lab's own with a limit, its counters, and its removal on every way
//! out (the harness's `track_dir`, whose janitor covers a SIGKILL of the lab), and of
//! stale ones that a lab left anyway (its janitor killed with it).

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use proclab::cleanup;
use std::path::Path;
use std::time::Duration;

/// Which cgroup interface the pids controller is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    pub fn name(self) -> &'static str {
        match self {
            Version::V1 => "cgroup v1",
            Version::V2 => "cgroup v2",
        }
    }
}

/// Where the lab makes its cgroup: a directory of a pids hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub version: Version,
    pub dir: String,
}

/// The place for the lab's cgroup, from /proc/self/mountinfo: a cgroup v1 mount whose
/// options name `pids`, else a cgroup2 mount for which `v2_has_pids(mountpoint)` (pids
/// listed in its cgroup.subtree_control, so its children get the controller).
pub fn find_in(
    mountinfo: &str,
    v2_has_pids: impl Fn(&str) -> bool,
) -> Option<Place> {
    let mut v2 = None;
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let Some(mountpoint) = left.split_whitespace().nth(4) else { continue };
        let mut right = right.split_whitespace();
        let (fstype, options) = (right.next(), right.nth(1).unwrap_or(""));
        let dir = mountpoint.to_string();
        if fstype == Some("cgroup") && options.split(',').any(|o| o == "pids") {
            return Some(Place { version: Version::V1, dir });
        }
        if fstype == Some("cgroup2") && v2.is_none() && v2_has_pids(mountpoint) {
            v2 = Some(Place { version: Version::V2, dir });
        }
    }
    v2
}

/// [`find_in`] on this machine.
pub fn find() -> Option<Place> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    find_in(&mountinfo, |mp| {
        std::fs::read_to_string(format!("{mp}/cgroup.subtree_control"))
            .is_ok_and(|s| s.split_whitespace().any(|c| c == "pids"))
    })
}

/// May this process make a cgroup in `place`? (access(2) with W_OK.)
pub fn writable(place: &Place) -> Result<(), Errno> {
    nix::unistd::access(place.dir.as_str(), nix::unistd::AccessFlags::W_OK)
}

const PREFIX: &str = "proclab-pid1-";

/// The start time of `pid` (field 22 of /proc/PID/stat), which tells a lab from a
/// later process that reuses its pid.
fn start_time(pid: i32) -> Option<u64> {
    procfs::process::Process::new(pid).ok()?.stat().ok().map(|s| s.starttime)
}

/// The lab's cgroup: `proclab-pid1-PID-STARTTIME` in the place.
pub struct Cgroup {
    pub path: String,
    pub version: Version,
}

impl Cgroup {
    /// mkdir the lab's cgroup, owned by the cleanup guard (and its janitor) from just
    /// before, so that no instant is uncovered.
    pub fn create(place: &Place) -> nix::Result<Cgroup> {
        let me = std::process::id() as i32;
        let start = start_time(me).unwrap_or(0);
        let path = format!("{}/{PREFIX}{me}-{start}", place.dir);
        cleanup::track_dir(&path);
        let mode = nix::sys::stat::Mode::from_bits_truncate(0o755);
        if let Err(e) = nix::unistd::mkdir(path.as_str(), mode) {
            cleanup::forget_dir(&path);
            return Err(e);
        }
        Ok(Cgroup { path, version: place.version })
    }

    /// Write `value` into the cgroup's file `file` (pids.max, cgroup.procs).
    pub fn write(&self, file: &str, value: &str) -> std::io::Result<()> {
        std::fs::write(format!("{}/{file}", self.path), value)
    }

    /// A number the cgroup shows: `pids.current`, or the `max` line of `pids.events`
    /// (how many forks the limit refused).
    pub fn number(&self, file: &str) -> Option<u64> {
        let text = std::fs::read_to_string(format!("{}/{file}", self.path)).ok()?;
        let value = match file {
            "pids.events" => text.lines().find_map(|l| l.strip_prefix("max "))?,
            _ => text.trim(),
        };
        value.trim().parse().ok()
    }

    /// rmdir, retried while the kernel still counts a process that just ended (EBUSY,
    /// for up to 500 ms); no longer owned once removed.
    pub fn remove(&self) -> nix::Result<()> {
        remove_dir(&self.path)?;
        cleanup::forget_dir(&self.path);
        Ok(())
    }
}

fn remove_dir(path: &str) -> nix::Result<()> {
    let rmdir = || {
        std::fs::remove_dir(path)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
    };
    for _ in 0..500 {
        match rmdir() {
            Err(Errno::EBUSY) => std::thread::sleep(Duration::from_millis(1)),
            other => return other,
        }
    }
    rmdir()
}

/// Remove the cgroups of labs that are gone (SIGKILLed before they could remove them):
/// any process left in one is the dead lab's own and is killed first. Returns their
/// paths.
pub fn remove_stale(place: &Place) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(&place.dir) else { return Vec::new() };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((pid, start)) = name.strip_prefix(PREFIX).and_then(owner) else {
            continue;
        };
        if start_time(pid) == Some(start) {
            continue; // its lab is still running
        }
        let path = format!("{}/{name}", place.dir);
        let procs = std::fs::read_to_string(format!("{path}/cgroup.procs"));
        for p in procs.unwrap_or_default().split_whitespace() {
            if let Ok(p) = p.parse() {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        }
        if remove_dir(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// `PID-STARTTIME` of a cgroup's name.
fn owner(rest: &str) -> Option<(i32, u64)> {
    let (pid, start) = rest.split_once('-')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

/// True if `dir` exists (the cgroup is still there).
pub fn exists(dir: &str) -> bool {
    Path::new(dir).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
35 25 0:30 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw
44 25 0:39 / /sys/fs/cgroup/pids rw,relatime shared:20 - cgroup cgroup rw,pids
45 25 0:40 / /sys/fs/cgroup/cpu rw,relatime shared:21 - cgroup cgroup rw,cpu";
    const UNIFIED: &str = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
31 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec shared:4 - cgroup2 cgroup2 rw,nsdelegate";

    #[test]
    fn finds_the_pids_hierarchy_on_v1_and_on_v2() {
        let v1 = find_in(HYBRID, |_| false);
        let want =
            Place { version: Version::V1, dir: "/sys/fs/cgroup/pids".into() };
        assert_eq!(v1, Some(want.clone()));
        assert_eq!(find_in(HYBRID, |_| true), Some(want), "v1 pids comes first");
        let v2 = find_in(UNIFIED, |mp| mp == "/sys/fs/cgroup");
        let want = Place { version: Version::V2, dir: "/sys/fs/cgroup".into() };
        assert_eq!(v2, Some(want));
        assert_eq!(find_in(UNIFIED, |_| false), None, "pids not enabled");
    }

    #[test]
    fn a_cgroup_name_names_its_lab() {
        assert_eq!(owner("4242-987654"), Some((4242, 987654)));
        assert_eq!(owner("4242"), None);
        assert_eq!(owner("x-1"), None);
    }
}
