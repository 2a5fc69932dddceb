//! Part 5: a process type that daemonizes (fork, setsid, fork, a PID file). To its
//! manager it "exits 0", while the daemon lives on out of reach: restarted, a second
//! copy fails to bind (EADDRINUSE); after kill -9 the PID file names a dead pid. Then a
//! manager that is a PR_SET_CHILD_SUBREAPER adopts the daemon and supervises it again.

use crate::events::{End, Event};
use crate::run::{self, Spec};
use crate::seen;
use crate::{http, procfile, Args, Ctx};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use proclab::{check, cleanup, observe, procfacts, Lab, State};
use std::time::Duration;

/// The pid in the PID file, once it is there (bounded).
fn pidfile_pid(path: &str) -> Option<i32> {
    procfacts::poll_until(Duration::from_secs(3), || {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    })
}

pub fn run(lab: &mut Lab, args: &Args, ctx: &Ctx) {
    lab.section("5. Never daemonize: a daemon escapes its manager");
    let port = procfile::port_for(ctx.port, 5, 1);
    let spec = Spec::new("daemon=1", "always", ctx.port, args.grace_ms);
    let spec = Spec { subreaper: proclab::test_removes("subreaper_first"), ..spec }; // tests
    let mut m = run::start(&spec, &ctx.files, &ctx.lifeline, lab.json());
    let manager = m.pid.as_raw();
    let ended = |e: &Event| matches!(e, Event::Ended { .. });
    // ANCHOR: escaped
    let first = m.until(Duration::from_secs(5), ended); // "exited, status 0"
    let d = pidfile_pid(&ctx.files.pidfile).unwrap_or(0); // `cat daemon.pid`
    seen::own(d); // killed on every way out of the lab
    let s = seen::seen(d); // its ppid and session
    let in_tree = procfacts::tree(manager).iter().any(|r| r.pid == d);
    let holds = seen::holds_listener(d, port); // its fd is the listening socket
    let answered = http::answered_by(port, Duration::from_secs(2));
    // ANCHOR_END: escaped
    if first.is_none() {
        lab.not_observed(
            "daemon_escaped",
            "daemon.1 did not exit: nothing escaped",
        );
    }
    m.pending(); // what they said so far, before the picture
    lab.show_tree(m.pid);
    let (ppid, sid) = s.as_ref().map_or((0, 0), |s| (s.ppid, s.sid));
    let manager_sid = seen::seen(manager).map_or(0, |s| s.sid);
    let parent = procfacts::comm(ppid).unwrap_or_default();
    let (by, first) = (seen::or(&answered, "nobody"), seen::or(&first, "nothing"));
    observe!(
        lab,
        "escaped",
        "the manager saw {first}; the PID file names {d}: ppid {ppid} ({parent}), \
         session {sid} (the manager's is {manager_sid}), in the manager's tree: \
         {in_tree}; it holds the socket listening on {port}: {holds}; GET answered \
         by {by}",
        first,
        d,
        ppid,
        parent,
        sid,
        manager_sid,
        in_tree,
        holds,
        answered,
        manager
    );
    let exited_0 = m
        .events
        .iter()
        .any(|e| matches!(e, Event::Ended { end: End::Exited(0), .. }));
    check!(
        lab,
        "daemon_escaped",
        exited_0 && s.is_some() && ppid != manager && sid != manager_sid && sid != d && !in_tree && holds && answered == Some(d),
        "daemon.1 \"exited, status 0\" in the manager's eyes, while its daemon {d} \
         lives on: not the manager's child, in a session of its own (not its leader), \
         serving PORT {port}"
    );
    // The policy restarts it: the new copy cannot bind the port the daemon holds.
    let gave_up =
        m.until(Duration::from_secs(5), |e| matches!(e, Event::GaveUp { .. }));
    let refused = m
        .said
        .iter()
        .filter(|(_, err, t)| *err && t.contains("EADDRINUSE"))
        .count();
    let failed = m
        .events
        .iter()
        .filter(|e| matches!(e, Event::Ended { end: End::Exited(1), .. }))
        .count();
    let mine = std::net::TcpListener::bind(("127.0.0.1", port))
        .err()
        .and_then(|e| e.raw_os_error());
    let mine = Errno::from_raw(mine.unwrap_or(0));
    observe!(lab, "second_copy", "{failed} restarted copies exited with status 1, {refused} said EADDRINUSE; the lab's own bind of {port}: {mine}; {gave}", failed, refused, port, mine = mine.desc(), gave = gave_up.map_or("".into(), |e| e.to_string()));
    check!(
        lab,
        "second_copy_fails",
        failed > 0 && refused == failed && mine == Errno::EADDRINUSE,
        "every copy the manager restarted failed to bind PORT {port} with EADDRINUSE \
         (the escaped daemon holds it) and exited 1, until the start limit"
    );
    // ANCHOR: stale
    seen::kill_one(d, Signal::SIGKILL); // `kill -9 $(cat daemon.pid)`
    let dead = || State::of(d).0; // '?' once reaped; 'Z' until its new parent reaps
    let gone = procfacts::poll_until(Duration::from_secs(3), || {
        matches!(dead(), '?' | 'Z').then_some(())
    });
    let file = std::fs::read_to_string(&ctx.files.pidfile).unwrap_or_default();
    // Dead, or the pid is already another process's.
    let now = State::of(d);
    // ANCHOR_END: stale
    cleanup::forget(Pid::from_raw(d));
    let end = m.stop(Duration::from_secs(3) + Duration::from_millis(args.grace_ms));
    let told = m.events.iter().any(|e| e.to_string().contains(&format!("pid {d}")));
    let end = seen::or(&end, "still runs");
    observe!(
        lab,
        "stale",
        "after kill -9: the PID file says {file}, /proc/{d}: {now}; the manager \
         said a word about {d}: {told}; it {end}",
        file = file.trim().to_string(),
        d,
        now,
        told,
        end
    );
    check!(
        lab,
        "stale_pid_file",
        gone.is_some() && file.trim() == d.to_string() && !told,
        "after kill -9 the PID file still names {d}, a dead process; the manager \
         never knew it had died"
    );
    let _ = std::fs::remove_file(&ctx.files.pidfile);
    subreaper(lab, args, ctx, port);
}

/// The pid the manager says it adopted next (0 if it says nothing within 5 s).
fn adopted(m: &mut run::Run) -> i32 {
    match m.until(Duration::from_secs(5), |e| matches!(e, Event::Adopted { .. })) {
        Some(Event::Adopted { pid, .. }) => pid,
        _ => 0,
    }
}

/// The same daemon under a manager that is a child subreaper.
fn subreaper(lab: &mut Lab, args: &Args, ctx: &Ctx, port: u16) {
    let spec = Spec {
        subreaper: true,
        ..Spec::new("daemon=1", "always", ctx.port, args.grace_ms)
    };
    let mut m = run::start(&spec, &ctx.files, &ctx.lifeline, lab.json());
    let manager = m.pid.as_raw();
    let within = Duration::from_secs(5);
    // ANCHOR: adopted
    let c = adopted(&mut m); // the manager's word: "daemon.1 adopted pid C"
    let ppid = seen::seen(c).map_or(0, |s| s.ppid); // the kernel's: re-parented
    seen::kill_one(c, Signal::SIGKILL);
    let ended = |e: &Event| matches!(e, Event::Ended { pid, .. } if *pid == c);
    let died = m.until(within, ended); // seen by waitpid: the manager's child
    let c2 = adopted(&mut m);
    // ANCHOR_END: adopted
    if c == 0 {
        seen::own(pidfile_pid(&ctx.files.pidfile).unwrap_or(0)); // the lab ends it
        lab.not_observed("subreaper_supervises", "the manager adopted no daemon");
    }
    let ppid2 = seen::seen(c2).map_or(0, |s| s.ppid);
    let answered = http::answered_by(port, Duration::from_secs(2));
    m.pending(); // what they said so far, before the picture
    lab.show_tree(m.pid);
    let end = m.stop(Duration::from_secs(3) + Duration::from_millis(args.grace_ms));
    let left = m.leftovers();
    let died = died.map_or("nothing".into(), |e| e.to_string());
    let (by, end) = (seen::or(&answered, "nobody"), seen::or(&end, "still runs"));
    observe!(
        lab,
        "adopted",
        "the manager {manager} adopted {c} (its ppid now {ppid}); after kill -9 it \
         saw: {died}; it restarted daemon.1 and adopted {c2} (ppid {ppid2}), \
         answered GET by {by}; stopped: {end}; left alive: {left:?}",
        manager,
        c,
        ppid,
        died,
        c2,
        ppid2,
        answered,
        end,
        left
    );
    check!(
        lab,
        "subreaper_supervises",
        c > 0 && ppid == manager && died.contains("killed by SIGKILL") && c2 > 0 && c2 != c && ppid2 == manager && answered == Some(c2) && left.is_empty(),
        "as a subreaper the manager became the daemon's parent: it saw its kill -9 \
         through waitpid, restarted it, adopted the new daemon, and stopped it at the end"
    );
}
