//! Section 0: the observer makes itself a child subreaper, so that every orphan of
//! a family is re-parented to it (not to PID 1): it can then reap them and read how
//! they ended.

use nix::sys::prctl;
use nix::unistd::getpid;
use proclab::{check, observe, procfacts, Lab, OrDie};

pub fn run(lab: &mut Lab) {
    lab.section("0. The observer becomes a subreaper");
    // ANCHOR: subreaper
    // From now on, orphans below us are re-parented to us, not to PID 1.
    prctl::set_child_subreaper(true).or_die("prctl(PR_SET_CHILD_SUBREAPER)");
    // Then ask the kernel back.
    let subreaper =
        prctl::get_child_subreaper().or_die("prctl(PR_GET_CHILD_SUBREAPER)");
    // ANCHOR_END: subreaper
    let init = procfacts::comm(1).unwrap_or_else(|| "?".into());
    observe!(
        lab,
        "subreaper",
        "the observer {pid} is a child subreaper: {subreaper}; PID 1 here is `{init}`",
        pid = getpid().as_raw(),
        subreaper,
        pid1_comm = init
    );
    check!(
        lab,
        "subreaper_set",
        subreaper,
        "the kernel reports the observer as a subreaper: every orphan of this run is \
         re-parented to it"
    );
}
