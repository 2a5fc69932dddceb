//! Section 4, a pipe only the parent writes: the parent makes it before forking,
//! each child closes its copy of the write end and blocks in read. Nothing is ever
//! written: when the parent dies, for whatever reason, the kernel closes its last
//! write end and every read returns 0.

use crate::family::{self, Member, Recipe, Role};
use crate::fate;
use crate::summary::Way;
use crate::Args;
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal, Signal::SIGKILL};
use nix::unistd::{getppid, pipe, read};
use proclab::_exit;
use proclab::lifeline::Lifeline;
use proclab::{check, say_as, Lab, OrDie};

const RECIPE: Recipe = Recipe {
    name: "pipe",
    switch: "writer_kept",
    parent_setup,
    child,
    extra: None,
};

/// In the parent, before it forks: the pipe. The children keep the read end; only the
/// parent keeps the write end.
fn parent_setup(m: &mut Member) {
    m.pipe = Some(pipe().or_die("pipe"));
}

// ANCHOR: eof
fn child(m: &Member) -> ! {
    let (r, w) = m.pipe.as_ref().expect("the parent's pipe");
    if !m.removed {
        family::close_copy(w); // a child holding a write end: no EOF, ever
    }
    m.ready(Role::Child);
    // read() returns 0 once the parent, the last writer, is gone.
    while matches!(read(r, &mut [0u8; 1]), Ok(1) | Err(Errno::EINTR)) {}
    let ppid = getppid();
    say_as!(
        "child",
        "EOF on the pipe: my parent is gone or going (getppid: {ppid})"
    );
    _exit(0) // ends on its own, with status 0
}
// ANCHOR_END: eof

pub fn run(lab: &mut Lab, args: &Args, lifeline: &Lifeline) -> Way {
    lab.section("4. A pipe only the parent writes: EOF when it dies");
    let fam = family::start(lab, &RECIPE, args, lifeline);
    kill(fam.parent, Signal::SIGKILL).or_die("kill"); // the same kill -9 as in 1
    let parent_end = fate::reap_parent(lab, RECIPE.name, &[fam.parent], SIGKILL);
    let fates = fate::await_deaths(&fam.children);
    fate::observe(lab, RECIPE.name, "child", fam.parent, &fam.children, &fates);
    let n = fates.len();
    let exited = fates.iter().filter(|f| f.exit_code() == Some(0)).count();
    let held = check!(
        lab,
        "pipe_children_exit",
        parent_end.signal() == Some(Signal::SIGKILL) && exited == n,
        "the parent died of SIGKILL and {exited} of {n} children read EOF on the \
         pipe and exited 0 by themselves"
    );
    Way {
        name: "4 pipe EOF",
        parent_death: "SIGKILL to the parent",
        children: fate::tally(&fates),
        died_with_it: exited == n,
        held,
        lesson: "children watching a pipe only the parent writes exit on its EOF",
    }
}
