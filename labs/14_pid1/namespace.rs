//! Part 1: a process is PID 1 of a new PID namespace: getpid() says 1 inside, and the
//! lab sees it under an ordinary pid (NSpid in /proc/PID/status lists both).
//! Chapter: book/src/14-pid1.md

use crate::app::{self, How, ALIVE, PING};
use crate::ns;
use crate::privileges::Ctx;
use proclab::{check, observe, say, Lab};

pub fn run(lab: &mut Lab, ctx: &Ctx) {
    lab.section("1. A process as PID 1 of a new PID namespace");
    // Tests only: an ordinary child instead, in the lab's own namespace.
    let flags = if proclab::test_removes("no_newpid") { 0 } else { ctx.newpid };
    // ANCHOR: clone
    // clone(2) like fork(), the child in a new PID namespace (and a new user
    // namespace when not root): there it is PID 1.
    let child = ns::spawn(ctx, flags, |ends| app::app(ends, ctx, How::default()));
    child.tell(PING, 0);
    let reply = child.next(5000); // [ALIVE, getpid(), getppid(), 0] inside
    let status = ns::status_of(child.pid); // /proc/PID/status, seen from outside
    let nspid = ns::status_numbers(&status, "NSpid:");
    // ANCHOR_END: clone
    let Some([ALIVE, inside, parent_inside, _]) = reply else {
        lab.not_observed("pid1_inside", "the child never answered");
    };
    let pid = child.pid.as_raw();
    say!("clone returned {pid}; inside, the child's getpid() returned {inside}");
    observe!(
        lab,
        "pid1",
        "inside: getpid() = {ns_pid}, getppid() = {ns_ppid} (its parent is outside \
         the namespace); outside: pid {pid}, NSpid {shown}",
        pid,
        forked = true,
        ns_pid = inside,
        ns_ppid = parent_inside,
        nspid,
        shown = ns::words(nspid),
        user_ns = ctx.user_ns
    );
    check!(
        lab,
        "pid1_inside",
        inside == 1,
        "inside its namespace the child is PID 1 (getpid() returned {ns_pid})",
        ns_pid = inside
    );
    check!(
        lab,
        "nspid_outside",
        nspid == [pid as i64, 1],
        "outside, the kernel lists both of its pids: NSpid {shown} (the lab's \
         namespace first)",
        nspid,
        shown = ns::words(nspid)
    );
    child.end();
}
