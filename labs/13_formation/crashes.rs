//! Part 3: a process dies and the manager sees it through SIGCHLD and waitpid, with its
//! status. Foreman's and honcho's policy: stop them all and exit with its code (a
//! worker's exit 70; a web's SIGKILL, 128 + 9). A restart policy with back-off: the
//! killed web comes back with a new pid; a crasher loops until the start limit.

use crate::events::{End, Event};
use crate::formation::processes;
use crate::run::{self, Spec};
use crate::seen::{self, pid_of};
use crate::{http, programs, Args, Ctx};
use nix::sys::signal::Signal;
use proclab::{check, observe, Lab, OrDie, Status};
use std::io::Write;
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(5);

pub fn run(lab: &mut Lab, args: &Args, ctx: &Ctx) {
    lab.section("3. Crashes: stop them all, or restart with back-off");
    stop_all(lab, args, ctx, "worker");
    stop_all(lab, args, ctx, "web");
    restart(lab, args, ctx);
}

/// Policy stop-all, and `who` dies: a worker on a job it cannot do, or a web by kill -9.
fn stop_all(lab: &mut Lab, args: &Args, ctx: &Ctx, who: &str) {
    let spec = Spec::new("web=1,worker=2", "stop-all", ctx.port, args.grace_ms);
    let mut m = run::start(&spec, &ctx.files, &ctx.lifeline, lab.json());
    let seen = processes(m.pid.as_raw(), 3);
    // ANCHOR: crash
    let victim = if who == "worker" {
        let mut queue = &ctx.files.jobs;
        queue.write_all(&programs::job("crash")).or_die("write"); // a poison job
        None // a worker takes it and exits 70
    } else {
        let web = pid_of(&seen, "web.1").unwrap_or(0);
        seen::kill_one(web, Signal::SIGKILL); // as the OOM killer would
        Some(web)
    };
    let died = m.until(WITHIN, |e| matches!(e, Event::Ended { .. }));
    // ANCHOR_END: crash
    let (name, pid, end) = match died {
        Some(Event::Ended { name, pid, end }) => (name, pid, end),
        _ => lab.not_observed(
            &format!("stop_all_{who}"),
            format_args!("the manager reported no end within {WITHIN:?}"),
        ),
    };
    let status = m.wait_exit(WITHIN + Duration::from_millis(args.grace_ms));
    let code = status.and_then(|s| s.code());
    let (status, left) =
        (status.map_or("still running".into(), |s| s.to_string()), m.leftovers());
    observe!(
        lab,
        "crash",
        "{name} (pid {pid}) {end}; the manager stopped the rest and {status}; \
         left alive: {left:?}",
        name,
        pid,
        end,
        code,
        left,
        // For the picture: who it was, its parent, that it ended, the kill -9.
        role = name.clone(),
        ppid = m.pid.as_raw(),
        ended = true,
        sent = victim.map(|_| "SIGKILL")
    );
    let was = pid_of(&seen, &name) == Some(pid) && victim.is_none_or(|v| v == pid);
    let want = if who == "worker" {
        End::Exited(70)
    } else {
        End::Killed("SIGKILL".into())
    };
    check!(
        lab,
        &format!("stop_all_{who}"),
        was && end == want && code == Some(want.shell_code()) && left.is_empty(),
        "policy stop-all: {name}, pid {pid} in /proc, {end}; the manager ended every \
         other process and exited with status {want_code}",
        want_code = want.shell_code()
    );
}

/// Policy on-failure: kill -9 web.1, and run a crasher next to it.
fn restart(lab: &mut Lab, args: &Args, ctx: &Ctx) {
    let spec = Spec::new("web=1,crasher=1", "on-failure", ctx.port, args.grace_ms);
    let mut m = run::start(&spec, &ctx.files, &ctx.lifeline, lab.json());
    let manager = m.pid.as_raw();
    let old = pid_of(&processes(manager, 2), "web.1").unwrap_or(0);
    // ANCHOR: restart
    seen::kill_one(old, Signal::SIGKILL);
    let again = |e: &Event| match e {
        Event::Started { name, pid, .. } => name == "web.1" && *pid != old,
        _ => false,
    };
    let new = match m.until(WITHIN, again) {
        Some(Event::Started { pid, .. }) => pid,
        _ => lab.not_observed("restarted", "web.1 was not started again"),
    };
    let exec = || seen::seen(new).filter(|s| s.ps == "web.1"); // once it has exec'd
    let now = proclab::procfacts::poll_until(WITHIN, exec);
    let port = now.as_ref().and_then(|s| s.port).unwrap_or(0);
    // Asked again until it answers: it has to bind first.
    let answered = http::answered_by(port, WITHIN);
    // ANCHOR_END: restart
    let ok = now.as_ref().is_some_and(|s| s.ppid == manager && s.ps == "web.1");
    let by = seen::or(&answered, "nobody");
    observe!(
        lab,
        "restart",
        "web.1: pid {old} killed, pid {new} started; GET on PORT {port} answered \
         by {by}",
        old,
        new,
        port,
        answered,
        // For the picture: the kill -9 of the old one, the new one forked by the manager.
        sent = "SIGKILL",
        signalled = vec![old],
        new_pid = new,
        ppid = manager
    );
    check!(
        lab,
        "restarted",
        ok && new != old && answered == Some(new) && !proclab::procfacts::exists(old),
        "policy on-failure: web.1 killed by SIGKILL came back as pid {new}, a child \
         of the manager with the same PORT, which answers"
    );
    backoff(lab, &mut m);
    let end = m.stop(WITHIN + Duration::from_millis(args.grace_ms));
    let left = m.leftovers();
    let status = end.map_or("still running".into(), |s: Status| s.to_string());
    observe!(
        lab,
        "stopped",
        "SIGTERM to the manager: {status}; left alive: {left:?}",
        status,
        left
    );
}

/// The crasher's lives, from the manager's lines: when each began and ended, the
/// delay it was given, until the start limit.
fn backoff(lab: &mut Lab, m: &mut run::Run) {
    let done =
        |e: &Event| matches!(e, Event::GaveUp { name, .. } if name == "crasher.1");
    if !m.events.iter().any(done) {
        m.until(WITHIN, done);
    }
    let (mut lives, mut delays, mut gave_up) = (Vec::new(), Vec::new(), None);
    let mut ends: Vec<(f64, End)> = Vec::new();
    for (e, &t) in m.events.iter().zip(&m.times) {
        match e {
            Event::Started { name, pid, .. } if name == "crasher.1" => {
                lives.push((t, *pid))
            }
            Event::Ended { name, end, .. } if name == "crasher.1" => {
                ends.push((t, end.clone()))
            }
            Event::Restarting { name, delay_ms, .. } if name == "crasher.1" => {
                delays.push(*delay_ms)
            }
            Event::GaveUp { starts, .. } => gave_up = Some(*starts),
            _ => {}
        }
    }
    // The wait between an end and the next start, as the manager's clock saw them.
    let waited: Vec<u64> = ends
        .iter()
        .zip(lives.iter().skip(1))
        .map(|((t_end, _), (t_start, _))| {
            ((t_start - t_end) * 1000.0).round() as u64
        })
        .collect();
    let pids: Vec<i32> = lives.iter().map(|l| l.1).collect();
    let after = seen::or(&gave_up, "no limit, after ?");
    observe!(
        lab,
        "backoff",
        "crasher.1 lived as {pids:?}; restart delays {delays:?} ms, waited \
         {waited:?} ms; gave up after {after} starts",
        pids,
        delays,
        waited,
        gave_up
    );
    let mut distinct = pids.clone();
    distinct.sort();
    distinct.dedup();
    let doubling =
        delays.windows(2).all(|w| w[1] == 2 * w[0]) && delays.first() == Some(&100);
    let kept = waited.iter().zip(&delays).all(|(w, d)| w + 1 >= *d);
    let failed = ends.iter().all(|(_, e)| *e == End::Exited(1));
    check!(
        lab,
        "backoff",
        doubling && kept && failed && distinct.len() == pids.len() && gave_up == Some(pids.len() as u32) && pids.len() == 4,
        "the crasher failed {n} times (exited, status 1), each life a new pid; each \
         restart waited at least its delay, doubled each time from 100 ms; at the \
         start limit the manager gave up",
        n = pids.len()
    );
}
