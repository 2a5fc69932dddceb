//! Part 6: the same web process type on two hosts (network namespaces, each with its own
//! manager), behind the real nginx in a third, the client in a fourth. Requests spread
//! over hosts and processes; one host's processes are killed and nginx answers on; the
//! host comes back and gets traffic again. Skipped, with a note, without root, ip, nginx.

use crate::load::{self, tally};
use crate::netns::{self, listens, octets, Net};
use crate::run::{self, Run, Spec};
use crate::seen;
use crate::{janitor, nginx, Args, Ctx, Scenario};
use nix::sys::signal::Signal;
use nix::unistd::getpid;
use proclab::{check, observe, procfacts, Lab};
use std::time::Duration;

/// A host's manager: web=2 on 0.0.0.0:`port` and the next port inside `role`'s
/// namespace, once the namespace's socket table shows both listening.
fn host(lab: &Lab, ctx: &Ctx, net: &Net, role: &str, port: u16) -> Run {
    let env = vec![("BIND", "0.0.0.0".to_string()), ("HOST", role.to_string())];
    let netns = Some(std::os::fd::AsRawFd::as_raw_fd(&net.ns(role).fd));
    let spec = Spec {
        env,
        netns,
        show: 0,
        ..Spec::new("web=2", "on-failure", port, 1000)
    };
    let m = run::start(&spec, &ctx.files, &ctx.lifeline, lab.json());
    let pid = m.pid.as_raw();
    let both = || {
        (listens(pid, [0; 4], port) && listens(pid, [0; 4], port + 1)).then_some(())
    };
    procfacts::poll_until(Duration::from_secs(5), both);
    m
}

/// Each web process of `m` by pid, named after its host ("h1 web.1"), from /proc.
fn names(m: &Run, role: &str, suffix: &str) -> Vec<(i32, String)> {
    let kids = crate::formation::processes(m.pid.as_raw(), 2);
    kids.into_iter().map(|s| (s.pid, format!("{role} {}{suffix}", s.ps))).collect()
}

/// Where h1's web processes listen when it comes back: where nginx expects them, but
/// for tests, which make it come back on ports nginx does not know.
fn back_port() -> u16 {
    if proclab::test_removes("h1_back_elsewhere") {
        6000
    } else {
        5000
    }
}

pub fn run(lab: &mut Lab, args: &Args, ctx: &Ctx) {
    lab.section("6. Scale-out: two hosts behind nginx");
    let lacks = netns::missing();
    if !lacks.is_empty() {
        let why = format!("this part needs {}: skipped", lacks.join(", "));
        observe!(lab, "scale_out", "{why}", skipped = true, needs = lacks);
        if args.scenario == Scenario::ScaleOut {
            lab.not_observed("spread", why); // it was asked for
        }
        return;
    }
    let me = getpid().as_raw();
    let stale = janitor::stale();
    if !stale.is_empty() {
        observe!(
            lab,
            "stale",
            "removed what labs no longer running left: {stale:?}",
            stale
        );
    }
    let before = netns::own_interfaces();
    let net = match netns::create(me) {
        Ok(n) => n,
        Err(e) => {
            let swept = janitor::sweep(me);
            let why = format!("ip could not make the namespaces ({e}): skipped");
            observe!(
                lab,
                "scale_out",
                "{why}; removed {swept}",
                skipped = true,
                why,
                swept
            );
            return;
        }
    };
    let names_: Vec<String> =
        net.0.iter().map(|n| format!("{} {}", n.name, n.addr)).collect();
    let inodes: Vec<u64> = net.0.iter().map(|n| n.inode).collect();
    observe!(
        lab,
        "namespaces",
        "network namespaces: {names:?}",
        names = names_,
        inodes
    );
    let h1 = host(lab, ctx, &net, "h1", 5000);
    let h2 = host(lab, ctx, &net, "h2", 5000);
    let hosts = if proclab::test_removes("single_host") { 1 } else { 2 }; // tests only
    let servers: Vec<String> = ["h1", "h2"][..hosts]
        .iter()
        .flat_map(|h| [5000, 5001].map(|p| format!("{}:{p}", net.ns(h).addr)))
        .collect();
    let bin = nginx::bin().unwrap_or_default();
    let prefix =
        std::path::PathBuf::from(format!("/tmp/{}nginx", janitor::prefix(me)));
    let lb = match nginx::start(&bin, net.ns("lb"), prefix, &servers) {
        Ok(n) => n,
        Err(e) => lab.not_observed("spread", e),
    };
    let mut who = names(&h1, "h1", "");
    who.extend(names(&h2, "h2", ""));
    let (version, master) = (nginx::version(&bin), lb.master.as_raw());
    let workers: Vec<i32> = lb.workers.iter().map(|w| w.as_raw()).collect();
    observe!(lab, "nginx", "{version} in lb: master {master}, workers {workers:?}; upstream {servers:?}", version, master, workers, servers);
    lab.show_tree(getpid());
    let after = netns::own_interfaces();
    let unchanged = before == after;
    observe!(lab, "own_namespace", "the lab's own network namespace: interfaces {after:?}, the same as before: {unchanged}", after, unchanged);
    let n = args.requests as usize;
    let load =
        load::start(&net.ns("cl").fd, (octets(net.ns("lb").addr), 80).into(), 4);
    let within = Duration::from_secs(30);
    load.until_sent(n, within);
    // ANCHOR: outage
    let victims = janitor::in_netns(net.ns("h1").inode); // its manager, its webs
    load.phase(2); // h1's processes are being killed, with requests in flight
    victims.iter().for_each(|&p| seen::kill_one(p, Signal::SIGKILL));
    let gone = procfacts::poll_until(within, || {
        janitor::in_netns(net.ns("h1").inode).is_empty().then_some(())
    });
    load.phase(3); // /proc: not one process left on h1
    load.until_sent(load.sent() + n, within);
    load.phase(4); // h1 comes back: a new manager, new web processes
    let new_h1 = host(lab, ctx, &net, "h1", back_port()); // once both ports listen
    let back_at = proclab::clock::lab_ns();
    // ANCHOR_END: outage
    who.extend(names(&new_h1, "h1", " (new)"));
    let back = procfacts::poll_until(Duration::from_secs(5), || {
        (tally(&load.hits(4), 4, &who).on("h1") >= 10).then_some(())
    });
    let hits = load.stop();
    let phases = ["both hosts up", "h1 being killed", "h1 down", "h1 back"];
    let t: Vec<load::Tally> = (1..=4).map(|p| tally(&hits, p, &who)).collect();
    let mut rows = Vec::new();
    for (i, (what, t)) in phases.iter().zip(&t).enumerate() {
        let mut row = |by: &str, v: usize| {
            rows.push(vec![
                (i + 1).to_string(),
                what.to_string(),
                by.into(),
                v.to_string(),
            ])
        };
        t.per.iter().for_each(|(k, &v)| row(k, v));
        row("failed (no 200)", t.failed);
    }
    lab.table("traffic", &["phase", "", "answered by", "requests"], &rows);
    let why: Vec<String> = hits
        .iter()
        .filter(|h| h.pid().is_none())
        .take(5)
        .map(|h| {
            format!(
                "phase {}: {}",
                h.phase,
                h.reply.as_ref().map_or_else(
                    |e| e.clone(),
                    |r| format!("{} {}", r.status, r.body.trim())
                )
            )
        })
        .collect();
    if !why.is_empty() {
        observe!(lab, "failures", "the first failed requests: {why:?}", why);
    }
    let (one, h1_1, h2_1) = (&t[0], t[0].on("h1"), t[0].on("h2"));
    observe!(
        lab,
        "spread",
        "phase 1: {sent} requests: h1 {h1_1}, h2 {h2_1}, failed {failed}",
        sent = one.sent,
        h1_1,
        h2_1,
        failed = one.failed,
        per = one.per.clone()
    );
    check!(lab, "spread", one.per.len() == 4 && one.per.values().all(|&v| v * 10 >= one.sent), "requests spread over both hosts and all four web processes, each answering at least a tenth of them");
    let mut old = h1;
    let h1_end = old.wait_exit(Duration::from_secs(3)); // the killed manager, reaped
    let (down, failed) = (&t[2], t[1].failed + t[2].failed);
    let bound = 4; // at most one request in flight per client thread at the kill
    let retried = t[1].retried + t[2].retried;
    observe!(lab, "outage", "{killed} processes of h1 killed (its manager: {end}); phases 2 and 3: {sent} requests, {failed} failed, {retried} retried by nginx on h2", killed = victims.len(), end = h1_end.map_or("not reaped".into(), |s| s.to_string()), sent = t[1].sent + down.sent, failed, retried);
    check!(lab, "keeps_answering", gone.is_some() && down.sent > 0 && down.on("h2") + down.failed == down.sent && failed <= bound, "with h1's processes killed, nginx answered on from h2: {failed} requests failed (bound: {bound}, the requests in flight)");
    let new = t[3].on("h1");
    let first = hits.iter().filter(|h| {
        h.phase == 4
            && h.pid().is_some_and(|p| {
                who.iter().any(|w| {
                    w.0 == p && w.1.starts_with("h1") && w.1.ends_with("(new)")
                })
            })
    });
    let after_ms = first.map(|h| h.at.saturating_sub(back_at) / 1_000_000).min();
    let first = seen::or(&after_ms, "never, ?");
    observe!(
        lab,
        "back",
        "phase 4: h1's new processes answered {new} of {sent} requests, the first \
         {first} ms after they listened",
        new,
        sent = t[3].sent,
        after_ms
    );
    check!(
        lab,
        "comes_back",
        back.is_some() && new > 0,
        "h1 came back with new web processes, and nginx sent them traffic again"
    );
    for mut m in [new_h1, h2] {
        m.stop(Duration::from_secs(5));
    }
    lb.stop();
    let keep = proclab::test_removes("keep_network"); // tests only: the janitor does it
    let swept = if keep { janitor::Swept::default() } else { janitor::sweep(me) };
    let left = janitor::namespaces(me);
    check!(
        lab,
        "network_removed",
        left.is_empty() && swept.processes == 0,
        "the namespaces, their veth pairs and the bridge are gone ({swept}), and no \
         process was left in them",
        swept
    );
}
