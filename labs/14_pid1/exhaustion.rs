//! Part 8: zombies hold pids. In a pids cgroup of its own with a limit, the maker
//! forks children that are never reaped until fork fails with EAGAIN; once it reaps
//! them, fork works again. Chapter: book/src/14-pid1.md

use crate::cgroup::{self, Cgroup};
use crate::maker::{self, FORKED, FORK_ONE, MADE, MAKE, REAP, REAPED};
use crate::ns;
use crate::orphans::zombies_below;
use crate::privileges::Ctx;
use crate::Args;
use nix::errno::Errno;
use proclab::{check, die, observe, procfacts, say, Lab, OrDie};
use std::time::Duration;

/// What part 8 found: the limit, how many forks it allowed, and the errno of the one
/// that failed (0: none failed).
pub struct Limit {
    pub max: u32,
    pub made: i64,
    pub errno: i64,
}

/// A counter of the cgroup, or `?` if it could not be read.
fn text(v: Option<u64>) -> String {
    v.map_or("?".into(), |v| v.to_string())
}

/// `succeeded`, or `failed with EAGAIN (Resource temporarily unavailable)`.
fn outcome(errno: i64) -> String {
    match errno {
        0 => "succeeded".into(),
        e => {
            let e = Errno::from_raw(e as i32);
            format!("failed with {e:?} ({})", e.desc())
        }
    }
}

pub fn run(lab: &mut Lab, ctx: &Ctx, args: &Args) -> Option<Limit> {
    let max = args.pids_max;
    lab.section(&format!("8. Zombies hold pids: fork fails at pids.max = {max}"));
    let Some(place) = &ctx.cgroup else {
        let why = "skipped (--skip-cgroup): it needs a pids cgroup of its own";
        observe!(lab, "skipped", "{why}", why);
        return None;
    };
    let maker = ns::spawn(ctx, ctx.newpid, |ends| maker::maker(ends, false));
    // ANCHOR: cgroup
    let cg = Cgroup::create(place).or_die("mkdir (the lab's pids cgroup)");
    if !proclab::test_removes("no_pids_limit") {
        cg.write("pids.max", &max.to_string()).or_die("write pids.max");
    }
    cg.write("cgroup.procs", &maker.pid.to_string()).or_die("write cgroup.procs");
    maker.tell(MAKE, 2 * max as i64); // forks until one fails (or 2 x max)
    let made = maker.next(10_000); // [MADE, made, errno, ns]
    let current = cg.number("pids.current"); // the maker and its zombies
    let refused_forks = cg.number("pids.events"); // forks refused at the limit
    let (path, version) = (cg.path.clone(), cg.version.name());
    // ANCHOR_END: cgroup
    let Some([MADE, made, errno, _]) = made else {
        lab.not_observed("eagain_at_limit", "the maker did not answer");
    };
    // A fork returns before its child has exited: wait (bounded) for the last.
    let all = || (zombies_below(maker.pid) >= made as usize).then_some(());
    procfacts::poll_until(Duration::from_secs(2), all);
    let zombies = zombies_below(maker.pid);
    let then = outcome(errno);
    observe!(
        lab,
        "pids_limit",
        "in {path} ({version}), pids.max {max}: {made} forks succeeded, then one \
         {then}; pids.current {shown}, {zombies} zombies; pids.events: max {count}",
        path,
        version,
        max,
        made,
        then,
        errno,
        current,
        shown = text(*current),
        zombies,
        refused_forks,
        count = text(*refused_forks)
    );
    check!(
        lab,
        "eagain_at_limit",
        errno == Errno::EAGAIN as i64 && made == max as i64 - 1 && zombies == made as usize,
        "with {made} unreaped zombies and the maker itself holding all {max} pids, \
         fork failed with EAGAIN"
    );
    if proclab::test_removes("panic_at_the_limit") {
        panic!("tests only: a panic while the cgroup is full"); // cleanup removes it
    }
    if !lab.stepping() && args.linger_ms > 0 {
        let ms = args.linger_ms;
        say!("the cgroup stays full {ms} ms: look at {path} now (or use --step)");
        std::thread::sleep(Duration::from_millis(ms)); // only so a person can look
    }
    // Tests only: retry without reaping first.
    let reap_first = !proclab::test_removes("no_reap_before_retry");
    // ANCHOR: reap
    let reaped = match reap_first && maker.tell(REAP, 0) {
        true => maker.next(10_000), // [REAPED, how many, ..]
        false => None,
    };
    let current = cg.number("pids.current"); // the maker alone, once reaped
    maker.tell(FORK_ONE, 0);
    // [FORKED, 0 or errno, ..]:
    let forked = maker.next(10_000);
    // ANCHOR_END: reap
    let reaped = match reaped {
        Some([REAPED, n, ..]) => n,
        _ => 0,
    };
    let retry = match forked {
        Some([FORKED, e, ..]) => e,
        _ => Errno::ETIMEDOUT as i64,
    };
    let new_fork = outcome(retry);
    observe!(
        lab,
        "after_reap",
        "the maker reaped {reaped}; pids.current {shown}; a new fork {new_fork}",
        reaped,
        current,
        shown = text(*current),
        new_fork,
        fork_errno = retry
    );
    check!(
        lab,
        "fork_after_reaping",
        retry == 0 && reaped == made,
        "once the zombies were reaped their pids were free, and fork worked again"
    );
    maker.end();
    if let Err(e) = cg.remove() {
        die(&format!("rmdir {path}"), e);
    }
    let gone = !cgroup::exists(&path);
    observe!(lab, "cgroup_removed", "{path} removed: {gone}", path, gone);
    Some(Limit { max, made, errno })
}
