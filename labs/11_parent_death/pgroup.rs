//! Section 3, process group: the parent leads a new group, which its children join
//! at fork; one `kill(-pgid, SIGTERM)` reaches every member, as Ctrl-C does in a
//! terminal. A child that moved to a group of its own (a daemon, `setsid`) is not
//! touched.

use crate::family::{self, Member, Recipe, Role};
use crate::fate;
use crate::summary::Way;
use crate::Args;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::{getpid, setpgid, Pid};
use proclab::lifeline::Lifeline;
use proclab::{check, Lab, OrDie};
use std::time::Duration;

const RECIPE: Recipe = Recipe {
    name: "pgroup",
    switch: "no_setpgid",
    parent_setup,
    child,
    extra: Some((Role::Leaver, leaver)),
};

// ANCHOR: setpgid
/// In the parent, before it forks: a new process group, led by the parent. The
/// children forked after this join it. (A test leaves it out.)
fn parent_setup(m: &mut Member) {
    if !m.removed {
        setpgid(Pid::from_raw(0), Pid::from_raw(0)).or_die("setpgid");
    }
}
// ANCHOR_END: setpgid

/// A child that does nothing special, in its parent's group.
fn child(m: &Member) -> ! {
    m.ready(Role::Child);
    m.lifeline.wait_then_exit()
}

// ANCHOR: leaver
/// The leaver: moves to a process group of its own, as a daemon (or `setsid`)
/// does.
fn leaver(m: &Member) -> ! {
    let me = getpid();
    // Leave the parent's group: a signal to that group will miss this process.
    setpgid(me, me).or_die("setpgid");
    m.ready(Role::Leaver);
    m.lifeline.wait_then_exit()
}
// ANCHOR_END: leaver

pub fn run(lab: &mut Lab, args: &Args, lifeline: &Lifeline) -> Way {
    lab.section("3. Process group: signal the whole group, as Ctrl-C does");
    let fam = family::start(lab, &RECIPE, args, lifeline);
    let leaver = fam.extra.expect("a leaver");
    // ANCHOR: killpg
    // The parent leads the group and its children inherited it at fork: one
    // kill(-pgid, SIGTERM) reaches every member at once.
    let pgid = fam.parent;
    if let Err(e) = killpg(pgid, Signal::SIGTERM) {
        // ESRCH: no group has that id, so the signal reached nobody.
        lab.not_observed("pgroup_members_die", format_args!("killpg({pgid}): {e}"));
    }
    // ANCHOR_END: killpg
    let group = [&[fam.parent][..], &fam.children].concat(); // the parent first
    let parent_end = fate::reap_parent(lab, RECIPE.name, &group, Signal::SIGTERM);
    let fates = fate::await_deaths(&fam.children);
    // The leaver had time to die too, if the signal had reached it.
    std::thread::sleep(Duration::from_millis(args.linger_ms));
    let leaver_fate = [fate::look(leaver)];
    fate::observe(lab, RECIPE.name, "child", fam.parent, &fam.children, &fates);
    fate::observe(lab, RECIPE.name, "leaver", fam.parent, &[leaver], &leaver_fate);
    let n = fates.len();
    let died = fates.iter().filter(|f| f.signal() == Some(Signal::SIGTERM)).count();
    let held = check!(
        lab,
        "pgroup_members_die",
        parent_end.signal() == Some(Signal::SIGTERM) && died == n,
        "one kill(-{pgid}, SIGTERM) killed the parent and {died} of {n} children, \
         all members of group {pgid}"
    );
    check!(
        lab,
        "pgroup_leaver_survives",
        leaver_fate[0].alive_under(getpid())
            && leaver_fate[0].pgrp() != Some(pgid.as_raw()),
        "the child that had moved to a group of its own was not signalled: it lives \
         on, re-parented to the observer"
    );
    fate::end_survivor(lab, RECIPE.name, leaver);
    Way {
        name: "3 process group",
        parent_death: "SIGTERM to the group",
        children: fate::tally(&fates),
        died_with_it: died == n,
        held,
        lesson: "a signal to the process group reaches them, but only the members",
    }
}
