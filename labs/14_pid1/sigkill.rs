//! Part 3: SIGKILL sent to PID 1 from inside its namespace does nothing; sent from the
//! parent namespace it kills PID 1, and the kernel then kills every other process of
//! the namespace. Chapter: book/src/14-pid1.md

use crate::app::{self, How, ALIVE, KILLED, KILL_INIT, PING, SLEEPER, SLEEPERS};
use crate::ns;
use crate::privileges::Ctx;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use proclab::{check, cleanup, observe, procfacts, Lab};

/// How many sleeping processes PID 1 starts before it is killed.
const SLEEPING: i64 = 3;

pub fn run(lab: &mut Lab, ctx: &Ctx) {
    lab.section(
        "3. SIGKILL: nothing from inside, the whole namespace from outside",
    );
    let flags = if proclab::test_removes("no_newpid") { 0 } else { ctx.newpid };
    // Tests only: SIGTERM from outside instead of SIGKILL.
    let outside_sig = match proclab::test_removes("outside_sigterm") {
        true => Signal::SIGTERM,
        false => Signal::SIGKILL,
    };
    let mut pid1 = ns::spawn(ctx, flags, |e| app::app(e, ctx, How::default()));
    pid1.tell(SLEEPERS, SLEEPING);
    let inside: Vec<i64> = (0..SLEEPING)
        .filter_map(|_| match pid1.next(5000) {
            Some([SLEEPER, pid, ..]) => Some(pid),
            _ => None,
        })
        .collect();
    // Their pids in the lab's namespace: the children of PID 1 there.
    let sleepers: Vec<i32> =
        procfacts::tree(pid1.pid.as_raw()).iter().skip(1).map(|r| r.pid).collect();
    lab.show_tree(pid1.pid);
    // ANCHOR: inside
    pid1.tell(KILL_INIT, 0); // a child of PID 1 sends it SIGKILL
    let Some([KILLED, target, rc, _]) = pid1.next(5000) else {
        lab.not_observed("sigkill_inside_ignored", "the killer never reported");
    };
    // PID 1 answers a ping only if the SIGKILL did nothing.
    let alive = pid1.tell(PING, 0) && matches!(pid1.next(5000), Some([ALIVE, ..]));
    // ANCHOR_END: inside
    observe!(
        lab,
        "kill_inside",
        "inside the namespace kill({ns_target}, SIGKILL) returned {rc}; PID 1 still \
         answers: {alive}",
        pid = pid1.pid.as_raw(),
        ns_target = target,
        rc,
        alive
    );
    check!(
        lab,
        "sigkill_inside_ignored",
        target == 1 && rc == 0 && alive,
        "SIGKILL from inside the namespace did nothing to its PID 1 (kill() \
         reported success)"
    );
    // ANCHOR: outside
    let ok = kill(pid1.pid, outside_sig).is_ok(); // from the parent namespace
    let ended = pid1.wait_ms(2000);
    // Every other process of the namespace is gone with it.
    let left: Vec<i32> =
        sleepers.iter().copied().filter(|&p| procfacts::exists(p)).collect();
    // ANCHOR_END: outside
    let (shown, still) = (ns::words(&sleepers), ns::words(&left));
    observe!(
        lab,
        "kill_outside",
        "kill({pid}, {sent}) from outside: ok {ok}; PID 1 {status}; of its {n} \
         sleeping processes ({shown}), still in /proc: [{still}]",
        pid = pid1.pid.as_raw(),
        sent = outside_sig.as_str(),
        ok,
        status = ended,
        n = sleepers.len(),
        sleepers,
        ns_pids = inside,
        left
    );
    check!(
        lab,
        "sigkill_outside_kills_all",
        ended.signal() == Some(Signal::SIGKILL) && left.is_empty(),
        "SIGKILL from the parent namespace killed PID 1, and with it every process \
         of its namespace"
    );
    for p in left {
        // Tests only: survivors (adopted by the lab, a subreaper) are ended here.
        let pid = Pid::from_raw(p);
        let _ = kill(pid, Signal::SIGKILL);
        cleanup::track(pid);
        let _ = proclab::wait::waitpid_by(pid, proclab::Deadline::after(FIVE));
        cleanup::forget(pid);
    }
    pid1.end();
}

const FIVE: std::time::Duration = std::time::Duration::from_secs(5);
