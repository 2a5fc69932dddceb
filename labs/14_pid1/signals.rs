//! Part 2: SIGTERM and SIGINT sent to a PID 1 that has no handler for them do nothing;
//! the same program as an ordinary process dies of them. Chapter: book/src/14-pid1.md

use crate::app::{self, How, ALIVE, PING};
use crate::ns::{self, Child, Ended};
use crate::privileges::Ctx;
use nix::sys::signal::{kill, Signal};
use proclab::{check, observe, Lab};

const SIGNALS: [Signal; 2] = [Signal::SIGTERM, Signal::SIGINT];

pub fn run(lab: &mut Lab, ctx: &Ctx) {
    lab.section("2. SIGTERM and SIGINT: PID 1 without a handler does not die");
    let flags = if proclab::test_removes("no_newpid") { 0 } else { ctx.newpid };
    let start = |flags| ns::spawn(ctx, flags, |e| app::app(e, ctx, How::default()));
    let pid1 = start(flags);
    // Tests only: the "ordinary" children are PID 1 of namespaces of their own too.
    let plain_flags = match proclab::test_removes("ordinary_in_namespace") {
        true => ctx.newpid,
        false => 0,
    };
    let mut plain: Vec<Child> =
        SIGNALS.iter().map(|_| start(plain_flags)).collect();
    // ANCHOR: sigterm
    for sig in SIGNALS {
        // From the parent namespace, as `docker stop` sends it: kill() returns 0.
        let ok = kill(pid1.pid, sig).is_ok();
        observe!(
            lab,
            "sent",
            "kill({pid}, {sent}) to PID 1: ok {ok}",
            pid = pid1.pid.as_raw(),
            sent = sig.as_str(),
            ok
        );
    }
    for (child, sig) in plain.iter().zip(SIGNALS) {
        let _ = kill(child.pid, sig); // the same program, not PID 1
    }
    // PID 1 has no handler: the kernel dropped the signals in kill() itself,
    // so a ping sent now is answered only if they did nothing.
    let alive = pid1.tell(PING, 0) && matches!(pid1.next(5000), Some([ALIVE, ..]));
    let status = ns::status_of(pid1.pid);
    let handled = ns::status_mask(&status, "SigCgt:"); // bits of handled signals
    let ignored = ns::status_mask(&status, "SigIgn:");
    let ends: Vec<Ended> = plain.iter_mut().map(|c| c.wait_ms(2000)).collect();
    // ANCHOR_END: sigterm
    let bits = SIGNALS.iter().map(|s| 1u64 << (*s as i32 - 1)).sum::<u64>();
    let pid = pid1.pid.as_raw();
    observe!(
        lab,
        "pid1_after_signals",
        "PID 1 ({pid} outside) still answers: {alive}; its SigCgt {handled:016x} and \
         SigIgn {ignored:016x}: no handler for SIGTERM or SIGINT, and neither ignored",
        pid,
        alive,
        handled,
        ignored
    );
    check!(
        lab,
        "pid1_ignores_sigterm",
        alive && handled & bits == 0 && ignored & bits == 0,
        "SIGTERM and SIGINT did nothing to PID 1, which neither handles nor ignores \
         them: the kernel does not apply their default action to a namespace's init"
    );
    for ((child, sig), ended) in plain.iter().zip(SIGNALS).zip(&ends) {
        observe!(
            lab,
            "ordinary",
            "the same program as an ordinary child {pid}, sent {sent}: {status}",
            pid = child.pid.as_raw(),
            sent = sig.as_str(),
            status = ended
        );
    }
    let died = ends.iter().zip(SIGNALS).all(|(e, s)| e.signal() == Some(s));
    check!(
        lab,
        "ordinary_dies",
        died,
        "as an ordinary process (not PID 1) the same program was killed by each"
    );
    pid1.end();
}
