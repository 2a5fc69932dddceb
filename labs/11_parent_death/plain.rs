//! Section 1, plain fork: the children do nothing special. The observer does what
//! `kill -9 <master>` does, and the children live on as orphans of the observer.

use crate::family::{self, Member, Recipe, Role};
use crate::fate::{self, Fate};
use crate::summary::Way;
use crate::Args;
use nix::sys::signal::{kill, Signal, Signal::SIGKILL};
use nix::unistd::getpid;
use proclab::lifeline::{self, Lifeline};
use proclab::{check, Lab, OrDie};
use std::time::Duration;

const RECIPE: Recipe = Recipe {
    name: "plain",
    switch: "plain_pdeathsig",
    parent_setup: family::nothing,
    child,
    extra: None,
};

/// A child that does nothing special: it runs until a signal, or the observer's end.
fn child(m: &Member) -> ! {
    if m.removed {
        lifeline::die_with_parent(m.parent.as_raw()); // tests only: dies with it
    }
    m.ready(Role::Child);
    m.lifeline.wait_then_exit()
}

pub fn run(lab: &mut Lab, args: &Args, lifeline: &Lifeline) -> Way {
    lab.section("1. Plain fork: kill -9 the parent");
    let me = getpid();
    let fam = family::start(lab, &RECIPE, args, lifeline);
    lab.show_tree(me);
    // ANCHOR: kill_plain
    // `kill -9 <master>`; the observer is the parent's parent: waitpid says how
    // it died.
    kill(fam.parent, Signal::SIGKILL).or_die("kill");
    let parent_end = fate::reap_parent(lab, RECIPE.name, &[fam.parent], SIGKILL);
    // Time for the children to die, if they were going to.
    std::thread::sleep(Duration::from_millis(args.linger_ms));
    // Alive or dead? Whose child now?
    let fates: Vec<Fate> = fam.children.iter().map(|&c| fate::look(c)).collect();
    // ANCHOR_END: kill_plain
    fate::observe(lab, RECIPE.name, "child", fam.parent, &fam.children, &fates);
    lab.show_tree(me);
    let n = fates.len();
    let (ms, parent_signal) = (args.linger_ms, parent_end.signal());
    // Survived: still running, with a new parent (the observer, our subreaper).
    let alive =
        fates.iter().filter(|f| f.alive_with_new_parent(fam.parent)).count();
    let ours = fates.iter().filter(|f| f.alive_under(me)).count();
    let held = check!(
        lab,
        "plain_children_survive",
        parent_signal == Some(Signal::SIGKILL) && alive == n,
        "the parent died of SIGKILL and {alive} of {n} children were still alive \
         {ms} ms later, with a new parent ({ours} of them the observer): killing the \
         parent did NOT kill them"
    );
    let cleaned = fam
        .children
        .iter()
        .filter(|&&c| fate::end_survivor(lab, RECIPE.name, c))
        .count();
    check!(
        lab,
        "plain_orphans_cleaned",
        cleaned == n,
        "{cleaned} of {n} orphans ended by the observer's SIGTERM and reaped: they \
         would have lived on otherwise"
    );
    Way {
        name: "1 plain fork",
        parent_death: "SIGKILL to the parent",
        children: fate::tally(&fates),
        died_with_it: alive == 0,
        held,
        lesson: "killing the parent leaves its children running, as orphans",
    }
}
