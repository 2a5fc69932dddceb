//! Case B: the lab makes itself a child subreaper first, so the orphan is re-parented
//! to the lab, which then collects its exit status with waitpid.

use crate::generations::{make_orphan, reap_by, ORPHAN_STATUS};
use nix::sys::prctl;
use nix::unistd::getpid;
use proclab::lifeline::Lifeline;
use proclab::{check, observe, procfacts, Lab, OrDie};
use std::time::Duration;

pub fn run(lab: &mut Lab, above: &[i32], lifeline: &Lifeline, linger_ms: i32) {
    let me = getpid().as_raw();
    // ANCHOR: subreaper
    // From now on, orphans below the lab are re-parented to it.
    prctl::set_child_subreaper(true).or_die("prctl(PR_SET_CHILD_SUBREAPER)");
    // The same three generations as in case A.
    let o = make_orphan(lab, "subreaper", above, lifeline, linger_ms);
    // ANCHOR_END: subreaper
    let mut change = o.change();
    if o.new_ppid == Some(me) {
        change += ": as PR_SET_CHILD_SUBREAPER asked, not PID 1";
    }
    check!(
        lab,
        "subreaper_adopted",
        o.old_ppid == o.parent.as_raw()
            && o.new_ppid == Some(me)
            && o.ppid_from_proc == Some(me),
        "{change}"
    );
    // ANCHOR: reap
    let bound = Duration::from_millis(linger_ms as u64 + 5000);
    let status = reap_by(o.pid, bound); // our child now: we reap it (ECHILD if not)
    let gone = !procfacts::exists(o.pid.as_raw());
    let pid = o.pid.as_raw();
    let there = if gone { "is gone" } else { "still exists" };
    observe!(
        lab,
        "subreaper_reaped",
        "the lab's waitpid({pid}): {status}; /proc/{pid} {there}",
        orphan = pid,
        status,
        code = status.code(),
        expected = ORPHAN_STATUS,
        gone
    );
    check!(
        lab,
        "subreaper_reaped",
        status.code() == Some(ORPHAN_STATUS) && gone,
        "the lab collected the orphan's own exit status ({ORPHAN_STATUS}), and \
         it is gone: nothing left behind"
    );
    // ANCHOR_END: reap
}
