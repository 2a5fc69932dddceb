//! Plumbing: what this user may do, found at the start. A PID namespace needs
//! CAP_SYS_ADMIN (root: CLONE_NEWPID), or else a new user namespace made with it
//! (CLONE_NEWUSER | CLONE_NEWPID); part 8 needs a pids cgroup the lab can create
//! (root), or `--skip-cgroup`. When a need cannot be met, the lab says exactly which
//! and exits 1.

use crate::cgroup::{self, Place};
use crate::ns;
use crate::Args;
use nix::errno::Errno;
use nix::sys::wait::waitpid;
use proclab::_exit;
use proclab::lifeline::Lifeline;
use proclab::{cleanup, die, say, OrDie};
use std::ffi::CString;
use std::os::fd::OwnedFd;

/// What the scenarios need from the start: how to get a PID namespace, the lab's
/// lifeline, /dev/null, the program to re-execute, and the cgroup place (part 8).
pub struct Ctx {
    /// CLONE_NEWPID, with CLONE_NEWUSER when not privileged.
    pub newpid: libc::c_int,
    pub user_ns: bool,
    pub lifeline: Lifeline,
    pub dev_null: OwnedFd,
    /// This binary (parts 5 and 6 re-execute it as the program under each init).
    pub exe: CString,
    /// The environment, for execve after clone (built before).
    pub env: Vec<CString>,
    /// None with `--skip-cgroup`.
    pub cgroup: Option<Place>,
}

/// Find out what this user may do, before anything else is forked; exit 1 naming
/// what is missing.
pub fn probe(args: &Args) -> Ctx {
    let cgroup = (!args.skip_cgroup).then(cgroup_place);
    let lifeline = Lifeline::new().or_die("pipe2");
    let dev_null = std::fs::File::open("/dev/null").or_die("open /dev/null");
    let exe = std::env::current_exe().or_die("current_exe");
    let newpid = match try_clone(libc::CLONE_NEWPID) {
        Ok(()) => libc::CLONE_NEWPID,
        Err(first) => match try_clone(libc::CLONE_NEWPID | libc::CLONE_NEWUSER) {
            Ok(()) => {
                say!("clone(CLONE_NEWPID) failed with {first} (not root): each PID namespace is made inside a new user namespace");
                libc::CLONE_NEWPID | libc::CLONE_NEWUSER
            }
            Err(e) => no_namespace(first, e),
        },
    };
    if let Some(place) = &cgroup {
        for path in cgroup::remove_stale(place) {
            say!("removed {path}: the cgroup of a lab that was killed before it could");
        }
    }
    let text = |s: std::ffi::OsString| CString::new(s.into_encoded_bytes()).ok();
    let env = std::env::vars_os().filter_map(|(k, v)| {
        let mut kv = k;
        kv.push("=");
        kv.push(v);
        text(kv)
    });
    Ctx {
        newpid,
        user_ns: newpid & libc::CLONE_NEWUSER != 0,
        lifeline,
        dev_null: dev_null.into(),
        exe: text(exe.into_os_string()).unwrap_or_default(),
        env: env.collect(),
        cgroup,
    }
}

/// Clone a child with `flags` that exits at once, and reap it.
fn try_clone(flags: libc::c_int) -> Result<(), Errno> {
    // SAFETY: the child only calls _exit.
    match unsafe { ns::clone_tracked(flags) }? {
        None => _exit(0),
        Some(pid) => {
            let _ = waitpid(pid, None);
            cleanup::forget(pid);
            Ok(())
        }
    }
}

/// Neither way to a PID namespace works: say why, exactly, and exit 1.
fn no_namespace(first: Errno, e: Errno) -> ! {
    eprintln!(
        "a PID namespace needs CAP_SYS_ADMIN (run as root) or a user namespace:"
    );
    eprintln!("  clone(CLONE_NEWPID) failed: {first:?} ({})", first.desc());
    let why = match e {
        Errno::ENOSPC => {
            let path = "/proc/sys/user/max_user_namespaces";
            let limit = std::fs::read_to_string(path).unwrap_or_default();
            format!("the limit of user namespaces is reached ({path} is {})", limit.trim())
        }
        Errno::EPERM => "unprivileged user namespaces are refused here (sysctl kernel.unprivileged_userns_clone=0, kernel.apparmor_restrict_unprivileged_userns=1, or a seccomp filter such as a container's)".into(),
        Errno::EINVAL => "this kernel has no user namespaces (CONFIG_USER_NS)".into(),
        _ => "see clone(2), ERRORS".into(),
    };
    eprintln!("  clone(CLONE_NEWUSER | CLONE_NEWPID) failed too: {why}");
    die("clone(CLONE_NEWUSER | CLONE_NEWPID)", e)
}

/// Where part 8 makes its pids cgroup; exit 1 if there is none this user may use.
fn cgroup_place() -> Place {
    let Some(place) = cgroup::find() else {
        eprintln!("part 8 needs a pids cgroup, and /proc/self/mountinfo shows no cgroup v1 mount with pids and no cgroup2 mount with pids in its cgroup.subtree_control; pass --skip-cgroup to run the rest");
        die("find a pids cgroup hierarchy", Errno::ENOENT)
    };
    if let Err(e) = cgroup::writable(&place) {
        eprintln!(
            "part 8 needs a pids cgroup of its own, made in {} ({}): run as root, or pass --skip-cgroup to run the rest",
            place.dir,
            place.version.name()
        );
        die(&format!("access({}, W_OK)", place.dir), e)
    }
    place
}
