//! Part 1: the manager reads the Procfile and runs the formation (web=2,worker=3): each
//! process a child of the manager, with its PORT by Foreman's rule, seen in /proc; each
//! web answers on its PORT; the workers take jobs from a queue.

use crate::events::Line;
use crate::procfile::{self, port_for, PROCFILE};
use crate::run::{self, Spec};
use crate::seen::{self, Seen};
use crate::{http, programs, Args, Ctx};
use proclab::{check, observe, procfacts, Lab, OrDie};
use std::io::Write;
use std::time::Duration;

/// The base port: `want`, or 0 for a free block; None means 5000 if its block is free.
pub fn base_port(want: Option<u16>, types: usize) -> u16 {
    let free = |base: u32| {
        (0..types as u32).all(|t| {
            (0..10).all(|i| {
                let p = base + 100 * t + i;
                p < 65536
                    && std::net::TcpListener::bind(("127.0.0.1", p as u16)).is_ok()
            })
        })
    };
    match want {
        Some(p) if p > 0 => return p,
        None if free(5000) => return 5000,
        _ => {}
    }
    let me = std::process::id();
    (0..200u32)
        .map(|k| {
            10_000 + (me.wrapping_mul(7919).wrapping_add(k * 104_729) % 200) * 100
        })
        .find(|&b| free(b))
        .unwrap_or(5000) as u16
}

/// Wait (bounded, and no longer than the manager lives) until /proc shows `n`
/// children of `manager` that carry their PS (they have exec'd); return them.
pub fn processes(manager: i32, n: usize) -> Vec<Seen> {
    let got = procfacts::poll_until(Duration::from_secs(5), || {
        let c = seen::children(manager);
        let alive = procfacts::state(manager).is_some_and(|s| s != 'Z');
        (c.len() >= n || !alive).then_some(c)
    });
    got.unwrap_or_else(|| seen::children(manager))
}

pub fn run(lab: &mut Lab, args: &Args, ctx: &Ctx) {
    lab.section("1. A Procfile and a formation");
    let types = procfile::parse(PROCFILE);
    let names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
    observe!(
        lab,
        "procfile",
        "the Procfile has {n} process types: {list}",
        n = types.len(),
        names,
        list = names.join(", ")
    );
    let plan = procfile::formation(&args.formation, &types).unwrap_or_default();
    let want: usize = plan.iter().map(|&(_, n)| n).sum();
    let spec = Spec {
        show: 12,
        ..Spec::new(&args.formation, "stop-all", ctx.port, args.grace_ms)
    };
    let mut m = run::start(&spec, &ctx.files, &ctx.lifeline, lab.json());
    let manager = m.pid.as_raw();
    let mut starts = 0;
    m.until(Duration::from_secs(5), |e| {
        starts += usize::from(matches!(e, crate::events::Event::Started { .. }));
        starts == want
    });
    // /proc: each child's ppid, and its PS and PORT from its environment.
    let seen = processes(manager, want);
    let mut all_ok = seen.len() == want;
    let mut rows = Vec::new();
    // ANCHOR: seen
    for s in &seen {
        let (ty, i) = s.ps.split_once('.').unwrap_or(("", ""));
        let t = types.iter().position(|e| e.name == ty).unwrap_or(0);
        let rule = port_for(ctx.port, t, i.parse().unwrap_or(1));
        let port = s.port.unwrap_or(0);
        let asked =
            (ty == "web").then(|| http::answered_by(port, Duration::from_secs(3)));
        all_ok &= s.ppid == manager && s.port == Some(rule);
        all_ok &= asked.is_none_or(|by| by == Some(s.pid)); // the web, itself
        let by = asked
            .map_or("-".into(), |a| a.map_or("nobody".into(), |p| p.to_string()));
        let cells =
            [&s.ps, &s.pid.to_string(), &s.ppid.to_string(), &port.to_string()];
        let mut row: Vec<String> = cells.iter().map(|c| c.to_string()).collect();
        row.extend([rule.to_string(), by]);
        rows.push(row);
    }
    // ANCHOR_END: seen
    for &(t, n) in &plan {
        let name = format!("{}.", types[t].name); // as many of each type as asked
        all_ok &= seen.iter().filter(|s| s.ps.starts_with(&name)).count() == n;
    }
    m.pending(); // what they said so far, before the picture
    lab.show_tree(m.pid);
    lab.table(
        "formation",
        &["process", "pid", "ppid", "PORT", "Foreman's rule", "GET / answered by"],
        &rows,
    );
    check!(
        lab,
        "formation_runs",
        all_ok,
        "{n} of {want} processes run ({formation}), each a child of the manager \
         {manager} with PS and the PORT of Foreman's rule in its environment; each \
         web answered on its PORT",
        n = seen.len(),
        formation = args.formation.clone()
    );
    let workers = seen.iter().filter(|s| s.ps.starts_with("worker.")).count();
    if workers > 0 {
        jobs(lab, &mut m, ctx, 30, &seen);
    }
    let end = m.stop(Duration::from_secs(5) + Duration::from_millis(args.grace_ms));
    let left = m.leftovers();
    observe!(
        lab,
        "stopped",
        "SIGTERM to the manager: {status}; left alive: {left:?}",
        status = end.map_or("still running".into(), |s| s.to_string()),
        left
    );
}

/// The lab puts `n` jobs on the queue; the workers' own lines say which did each.
fn jobs(lab: &mut Lab, m: &mut run::Run, ctx: &Ctx, n: u32, seen: &[Seen]) {
    let mut q = &ctx.files.jobs;
    for i in 1..=n {
        q.write_all(&programs::job(&i.to_string())).or_die("write to the queue");
    }
    let mut done: Vec<(u32, String)> = Vec::new();
    let d = proclab::Deadline::after(Duration::from_secs(5));
    while done.len() < n as usize {
        let Some(line) = m.next(d) else { break };
        if let Line::Process { name, text, .. } = line {
            let job = text
                .strip_prefix("job ")
                .and_then(|t| t.split(' ').next()?.parse().ok());
            done.extend(job.map(|j| (j, name)));
        }
    }
    let mut per: Vec<(String, usize)> = Vec::new();
    for (_, w) in &done {
        match per.iter_mut().find(|(n, _)| n == w) {
            Some(e) => e.1 += 1,
            None => per.push((w.clone(), 1)),
        }
    }
    per.sort();
    observe!(
        lab,
        "jobs",
        "{got} jobs reported done, by worker:",
        got = done.len(),
        per
    );
    let rows: Vec<Vec<String>> = (per.iter())
        .map(|(w, n)| {
            vec![
                seen::pid_of(seen, w).unwrap_or(0).to_string(),
                n.to_string(),
                w.clone(),
            ]
        })
        .collect();
    lab.table("jobs_per_worker", &["worker pid", "jobs", "process"], &rows);
    let mut ids: Vec<u32> = done.iter().map(|d| d.0).collect();
    ids.sort();
    check!(
        lab,
        "jobs_done_once",
        ids == (1..=n).collect::<Vec<_>>()
            && done.iter().all(|d| d.1.starts_with("worker.")),
        "each of the {n} jobs put on the queue was done exactly once, by a worker"
    );
}
