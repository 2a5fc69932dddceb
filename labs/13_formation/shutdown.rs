//! Part 4: SIGTERM to the manager (what Ctrl-C or `systemctl stop` does). It sends
//! SIGTERM to each process's group, waits the grace period, then SIGKILLs what is left:
//! the stubborn process, which ignores SIGTERM (its SigIgn mask in /proc says so).

use crate::events::{End, Event};
use crate::formation::processes;
use crate::run::{self, Spec};
use crate::seen;
use crate::{Args, Ctx};
use nix::sys::signal::{kill, Signal};
use proclab::clock::lab_ns;
use proclab::{check, observe, procfacts, Lab};
use std::time::Duration;

/// True when `sig` is in the mask `field` of /proc/PID/status: `SigIgn:` (ignored) or
/// `SigCgt:` (caught by a handler). Bit N-1 is signal N.
pub fn in_mask(pid: i32, field: &str, sig: Signal) -> bool {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mask = status.lines().find_map(|l| l.strip_prefix(field));
    let mask =
        mask.and_then(|m| u64::from_str_radix(m.trim(), 16).ok()).unwrap_or(0);
    mask & (1 << (sig as i32 - 1)) != 0
}

pub fn run(lab: &mut Lab, args: &Args, ctx: &Ctx) {
    lab.section("4. Shutdown: SIGTERM, a grace period, then SIGKILL");
    let grace = Duration::from_millis(args.grace_ms);
    let spec = Spec::new(
        "web=2,worker=1,stubborn=1",
        "on-failure",
        ctx.port,
        args.grace_ms,
    );
    let mut m = run::start(&spec, &ctx.files, &ctx.lifeline, lab.json());
    let seen = processes(m.pid.as_raw(), 4);
    let stubborn = seen.iter().find(|s| s.ps == "stubborn.1").map_or(0, |s| s.pid);
    let deaf = procfacts::poll_until(Duration::from_secs(5), || {
        in_mask(stubborn, "SigIgn:", Signal::SIGTERM).then_some(())
    });
    // Ready to be stopped once each of the others catches SIGTERM (its handler is in).
    let others = seen.iter().filter(|s| s.pid != stubborn);
    let ready = procfacts::poll_until(Duration::from_secs(5), || {
        let mut all = others.clone();
        all.all(|s| in_mask(s.pid, "SigCgt:", Signal::SIGTERM)).then_some(())
    });
    let ready = ready.is_some();
    m.pending(); // what they said so far, before the picture
    lab.show_tree(m.pid);
    // ANCHOR: stop
    let t0 = lab_ns();
    kill(m.pid, Signal::SIGTERM).ok(); // Ctrl-C, `kill`, `systemctl stop`
    let mut gone_ms: Vec<Option<u64>> = vec![None; seen.len()];
    procfacts::poll_until(grace + Duration::from_secs(3), || {
        for (s, g) in seen.iter().zip(gone_ms.iter_mut()) {
            if g.is_none() && procfacts::state(s.pid).is_none_or(|st| st == 'Z') {
                *g = Some((lab_ns() - t0) / 1_000_000); // gone, or a zombie
            }
        }
        gone_ms.iter().all(Option::is_some).then_some(())
    });
    let status = m.wait_exit(Duration::from_secs(1));
    // ANCHOR_END: stop
    let left = m.leftovers();
    let rows: Vec<Vec<String>> = seen
        .iter()
        .zip(&gone_ms)
        .map(|(s, g)| {
            let end = m.events.iter().find_map(|e| match e {
                Event::Ended { pid, end, .. } if *pid == s.pid => {
                    Some(end.to_string())
                }
                _ => None,
            });
            let g = g.map_or("still alive".into(), |ms| format!("{ms} ms"));
            vec![s.ps.clone(), s.pid.to_string(), g, end.unwrap_or("-".into())]
        })
        .collect();
    lab.table(
        "shutdown",
        &["process", "pid", "gone after SIGTERM", "as waitpid said"],
        &rows,
    );
    let ended = |pid: i32, want: &End| {
        m.events.iter().any(|e| matches!(e, Event::Ended { pid: p, end, .. } if *p == pid && end == want))
    };
    let (mut graceful, mut stubborn_ms) = (true, None);
    for (s, g) in seen.iter().zip(&gone_ms) {
        if s.pid == stubborn {
            stubborn_ms = *g;
        } else {
            graceful &= g.is_some_and(|ms| ms < args.grace_ms)
                && ended(s.pid, &End::Exited(0));
        }
    }
    check!(
        lab,
        "shutdown_graceful",
        graceful && ready,
        "the web and worker processes catch SIGTERM (SigCgt), and on it they stopped \
         by themselves, exited with status 0, within the grace period",
        caught = ready
    );
    let killed = ended(stubborn, &End::Killed("SIGKILL".into()));
    let sent = m.events.iter().any(|e| matches!(e, Event::Sent { signal, pid, .. } if signal == "SIGKILL" && *pid == stubborn));
    let status = status.map_or("still running".into(), |s| s.to_string());
    let gone = seen::or(&stubborn_ms.map(|ms| format!("{ms} ms")), "never");
    observe!(
        lab,
        "escalation",
        "stubborn.1 (pid {stubborn}) ignores SIGTERM (SigIgn): {deaf}; gone {gone} \
         after SIGTERM; the manager {status}; left alive: {left:?}",
        stubborn,
        deaf = deaf.is_some(),
        stubborn_ms,
        left
    );
    check!(
        lab,
        "shutdown_escalates",
        deaf.is_some() && sent && killed && stubborn_ms.is_some_and(|ms| ms + 5 >= args.grace_ms) && left.is_empty(),
        "stubborn.1 ignored SIGTERM and lived the whole grace period ({grace_ms} ms); \
         then the manager sent SIGKILL, waitpid said killed by SIGKILL, and nothing \
         of the formation was left",
        grace_ms = args.grace_ms
    );
    if !left.is_empty() || status == "still running" {
        m.stop(Duration::from_secs(1)); // tests only: a manager that does not escalate
    }
}
