//! Section 2, PR_SET_PDEATHSIG: each child asks the kernel for SIGTERM when its
//! parent dies. A late child shows the race between fork and prctl, caught by
//! re-checking getppid.

use crate::family::{self, Member, Recipe, Role};
use crate::fate;
use crate::summary::Way;
use crate::Args;
use nix::sys::prctl;
use nix::sys::signal::{kill, Signal, Signal::SIGKILL};
use nix::unistd::{getppid, read, write};
use proclab::_exit;
use proclab::lifeline::Lifeline;
use proclab::{check, say_as, Lab, OrDie};

/// Exit status of a child whose getppid re-check found its parent already gone.
const PARENT_GONE: i32 = 4;

const RECIPE: Recipe = Recipe {
    name: "pdeathsig",
    switch: "no_recheck",
    parent_setup: family::nothing,
    child,
    extra: Some((Role::Late, late_child)),
};

fn child(m: &Member) -> ! {
    sigterm_when_parent_dies(m, true);
    m.ready(Role::Child);
    m.lifeline.wait_then_exit() // until SIGTERM, or the observer's end
}

// ANCHOR: pdeathsig
/// Ask the kernel for SIGTERM when the parent dies. If it died between our
/// fork and this call, we were already re-parented and no signal will ever
/// come: leave now. (A test turns the re-check off, to show what it prevents.)
fn sigterm_when_parent_dies(m: &Member, recheck: bool) {
    // Armed from now on, not retroactively.
    prctl::set_pdeathsig(Signal::SIGTERM).or_die("prctl(PR_SET_PDEATHSIG)");
    if recheck && getppid() != m.parent {
        let (parent, now) = (m.parent, getppid());
        say_as!(
            "child",
            "my parent {parent} is already gone (ppid {now}): exiting"
        );
        _exit(PARENT_GONE)
    }
}
// ANCHOR_END: pdeathsig

// ANCHOR: race
/// The late child: as if preempted between fork and prctl until its parent
/// died.
fn late_child(m: &Member) -> ! {
    m.ready(Role::Late);
    // Stands in for "descheduled right after fork": the observer says go only
    // once it has reaped our parent, so we were surely re-parented by then.
    let _ = read(m.go, &mut [0u8; 1]); // one byte, or end of file: it is gone
    sigterm_when_parent_dies(m, !m.removed); // only its re-check saves it
    m.lifeline.wait_then_exit() // without the re-check: only the observer's end
}
// ANCHOR_END: race

pub fn run(lab: &mut Lab, args: &Args, lifeline: &Lifeline) -> Way {
    lab.section("2. PR_SET_PDEATHSIG: a signal when the parent dies");
    let fam = family::start(lab, &RECIPE, args, lifeline);
    kill(fam.parent, Signal::SIGKILL).or_die("kill"); // the same kill -9 as in 1
    let parent_end = fate::reap_parent(lab, RECIPE.name, &[fam.parent], SIGKILL);
    // The late child may go on: its parent is reaped, it was re-parented.
    write(&fam.go, b"g").or_die("write");
    let fates = fate::await_deaths(&fam.children); // bounded
    let late = fam.extra.expect("a late child");
    let late_fate = fate::await_deaths(&[late]);
    fate::observe(lab, RECIPE.name, "child", fam.parent, &fam.children, &fates);
    fate::observe(lab, RECIPE.name, "late child", fam.parent, &[late], &late_fate);
    let n = fates.len();
    let died = fates.iter().filter(|f| f.signal() == Some(Signal::SIGTERM)).count();
    let held = check!(
        lab,
        "pdeathsig_children_die",
        parent_end.signal() == Some(Signal::SIGKILL) && died == n,
        "the parent died of SIGKILL and {died} of {n} children were killed by \
         SIGTERM, the signal they asked for with PR_SET_PDEATHSIG"
    );
    check!(
        lab,
        "pdeathsig_race_caught",
        late_fate[0].exit_code() == Some(PARENT_GONE),
        "the late child, whose prctl came after its parent's death, got no signal; \
         its getppid re-check saw the change and it exited with status {PARENT_GONE}"
    );
    fate::end_survivor(lab, RECIPE.name, late); // only if the re-check failed
    Way {
        name: "2 PR_SET_PDEATHSIG",
        parent_death: "SIGKILL to the parent",
        children: fate::tally(&fates),
        died_with_it: died == n,
        held,
        lesson: "each child is signalled when its parent dies (re-check getppid \
                 after prctl)",
    }
}
