//! Part 4: orphans of the namespace are adopted by its PID 1; a PID 1 that never waits
//! keeps every one of them that exits as a zombie, and the count only grows.
//! Chapter: book/src/14-pid1.md

use crate::app::{self, How, ORPHAN, ORPHANS};
use crate::ns;
use crate::privileges::Ctx;
use crate::Args;
use nix::unistd::Pid;
use proclab::{check, fdio, observe, procfacts, Lab};
use std::time::Duration;

/// Zombies among the descendants of `pid1` (as the lab sees them).
pub fn zombies_below(pid1: Pid) -> usize {
    let rows = procfacts::tree(pid1.as_raw());
    rows.iter().skip(1).filter(|r| r.state == 'Z').count()
}

pub fn run(lab: &mut Lab, ctx: &Ctx, args: &Args) {
    let n = args.orphans as i64;
    lab.section(&format!("4. {n} orphans, and a PID 1 that never waits"));
    let how = How {
        reaps: proclab::test_removes("reap_in_pid1"),
        parent_stays: proclab::test_removes("parent_stays"),
    };
    let pid1 = ns::spawn(ctx, ctx.newpid, |ends| app::app(ends, ctx, how));
    // ANCHOR: adopt
    pid1.tell(ORPHANS, n); // PID 1 forks a parent, which forks n children and exits
    let mut adopted = 0;
    for _ in 0..n {
        let Some([ORPHAN, inside, ppid, parent]) = pid1.next(5000) else { break };
        let pid = procfacts::tree(pid1.pid.as_raw())
            .iter()
            .find(|r| ns::inner_pid(r.pid) == Some(inside))
            .map_or(0, |r| r.pid); // the same process, as the lab sees it
        let outside = procfacts::ppid(pid).unwrap_or(0);
        // ns_: pids inside the namespace, another numbering than the lab's.
        observe!(
            lab,
            "orphan",
            "orphan {ns_pid} (pid {pid} outside): parent was {ns_parent}, now \
             getppid() = {ns_ppid}; outside its ppid is {ppid}",
            pid,
            ns_pid = inside,
            ns_parent = parent,
            ns_ppid = ppid,
            ppid = outside
        );
        adopted += (ppid == 1 && outside == pid1.pid.as_raw()) as i64;
    }
    // ANCHOR_END: adopt
    check!(
        lab,
        "orphans_adopted_by_pid1",
        adopted == n,
        "{adopted} of {n} orphans were adopted by the namespace's PID 1 (ppid 1 \
         inside, the lab's child {pid} outside)",
        adopted,
        n,
        pid = pid1.pid.as_raw()
    );
    // ANCHOR: accumulate
    // No wait can announce a zombie without reaping it: watch /proc (bounded).
    let zombies = |want: usize| {
        let seen = procfacts::poll_until(Duration::from_secs(2), || {
            (zombies_below(pid1.pid) >= want).then_some(())
        });
        (seen.is_some(), zombies_below(pid1.pid))
    };
    let mut counts = vec![zombies(1).1]; // their parent, which exited unwaited for
    for _ in 0..n {
        let _ = fdio::write_all(&pid1.release, b"x"); // one orphan exits
        let (grew, count) = zombies(counts[counts.len() - 1] + 1);
        counts.push(count);
        if !grew {
            break; // it did not stay a zombie: no need to wait for the others
        }
    }
    // ANCHOR_END: accumulate
    lab.show_tree(pid1.pid);
    let grew = counts.len() == n as usize + 1
        && counts.windows(2).all(|w| w[1] == w[0] + 1)
        && counts[0] >= 1;
    observe!(
        lab,
        "zombies",
        "zombies under PID 1 as the orphans exit one by one: {shown}",
        counts,
        shown = ns::words(counts)
    );
    check!(
        lab,
        "zombies_accumulate",
        grew,
        "each orphan that exited stayed a zombie of PID 1 (and so did their parent): \
         the count only grew, {first} to {last}",
        first = counts[0],
        last = counts[counts.len() - 1]
    );
    pid1.end(); // the kernel reaps the namespace's zombies with it
}
