//! Section 2: fork a child while the parent holds a region it has written in full; the
//! child says it is ready and waits. /proc/PID/smaps of both shows every page shared:
//! resident in both, half of it in each one's PSS, none of it private.

use crate::region::Region;
use crate::smaps::Smaps;
use crate::writes;
use nix::errno::Errno;
use nix::unistd::{getpid, pipe, ForkResult, Pid};
use proclab::lifeline::die_with_parent;
use proclab::wait::waitpid_by;
use proclab::{check, cleanup, fdio, flush_stdout, Deadline, Lab, OrDie, Status};
use std::os::fd::OwnedFd;
use std::time::Duration;

/// The child of section 2, waiting for the word to write.
pub struct Child {
    pub pid: Pid,
    pub region: Region,
    /// Our end of its command pipe: the number of pages to write, then EOF.
    pub cmd: OwnedFd,
    /// Our end of its report pipe: "ready", then how long the writes took.
    report: OwnedFd,
    /// Its mapping of the region right after fork.
    pub after_fork: Smaps,
}

pub fn run(lab: &mut Lab, region_mib: u64, huge: bool) -> Child {
    let shared = proclab::test_removes("region_shared"); // tests only: MAP_SHARED
    let nothing = proclab::test_removes("child_writes_nothing"); // tests only
    let me = getpid().as_raw();
    let region = Region::new((region_mib << 20) as usize, huge, shared);
    region.touch(1); // the parent writes every page before forking
    let (cmd_r, cmd_w) = pipe().or_die("pipe");
    let (report_r, report_w) = pipe().or_die("pipe");
    flush_stdout();
    // ANCHOR: fork
    // SAFETY: the child only calls prctl, getppid, close, read, write,
    // clock_gettime and _exit, and writes its own memory.
    let pid = match unsafe { cleanup::fork_tracked() } {
        ForkResult::Child => {
            die_with_parent(me);
            drop((cmd_w, report_r)); // or our EOF would never reach it
            writes::child(&region, &cmd_r, &report_w, nothing)
        }
        ForkResult::Parent { child } => child,
    };
    // The child's ends: if it dies, our reads see EOF.
    drop((cmd_r, report_w));
    // ANCHOR_END: fork
    let mut child = Child {
        pid,
        region,
        cmd: cmd_w,
        report: report_r,
        after_fork: Smaps::default(),
    };
    child.hear(lab, &mut [0u8; 1]); // ready
    let region_kib = region_mib << 10;
    let (c, p) = (child.pid.as_raw(), me);
    let child_m = Smaps::of(c, child.region.addr());
    let parent_m = Smaps::of(p, child.region.addr());
    child_m.observe(lab, "after_fork", "child", c, region_kib);
    parent_m.observe(lab, "after_fork", "parent", p, region_kib);
    // ANCHOR: half
    let half = |m: &Smaps| {
        let off = (m.pss as i64 - (region_kib / 2) as i64).abs();
        m.rss == region_kib && off <= (region_kib / 50).max(8) as i64
    };
    check!(
        lab,
        "pss_is_half_rss_after_fork",
        half(&child_m) && half(&parent_m) && child_m.private_dirty == 0,
        "right after fork the whole region ({region_kib} KiB) is resident in both, \
         each one's PSS is half of it, and none of it is private",
        region_kib
    );
    // ANCHOR_END: half
    child.after_fork = child_m;
    child
}

impl Child {
    /// Read the child's next message (all of `buf`) within 60 s of lab time. A child
    /// that ends early or never answers did not write as told: not observed.
    pub fn hear(&self, lab: &mut Lab, buf: &mut [u8]) {
        let by = Deadline::after(Duration::from_secs(60));
        let why = match fdio::read_full_by(&self.report, buf, by) {
            Ok(n) if n == buf.len() => return,
            Ok(_) => {
                let st = waitpid_by(self.pid, by)
                    .unwrap_or(Status(Err(Errno::ETIMEDOUT)));
                cleanup::forget(self.pid);
                format!("the child ended early: {st}")
            }
            Err(e) => format!("no word from the child within 60 s: {e}"),
        };
        lab.not_observed("faults_match_pages_written", why)
    }
}
