//! Load 1, CPU only: every request is C = --request-ms of CPU and no waiting. The work,
//! not the model, sets the ceiling: a core answers 1000 / C such requests a second, so
//! no model passes cores x 1000 / C, one event loop (one thread) stops at one core, and
//! the CPU each server got, as the kernel counts it, went into answers.

use crate::load::{Spec, GRACE};
use crate::plan::Plan;
use crate::point::{measure, name, table, Point, ALL};
use crate::Model;
use proclab::{check, observe, Lab};

/// How many cores `p` can keep busy at most: its threads of work, or the cores.
fn ceiling(p: &Point, plan: &Plan) -> f64 {
    let threads = match p.model {
        Model::Loop => 1,
        Model::Threads => plan.clients, // one per client connection
        _ => p.workers,
    };
    threads.min(plan.cores) as f64
}

pub fn run(lab: &mut Lab, plan: &Plan) {
    let cost = plan.mix(0);
    let (clients, window, slow_step) = (plan.clients, plan.window, plan.slow_step);
    let spec = Spec { clients, slow: 0, slow_step, window, grace: GRACE, cost };
    let others = crate::cpuview::Others::start();
    // ANCHOR: cpu_only
    let points: Vec<Point> =
        ALL.iter().map(|&m| measure(plan, m, plan.workers_of(m), &spec)).collect();
    // Cores busy: the CPU time the answers contain, per second of the window.
    let busy = |p: &Point| p.m.rps * cost.cpu_ms as f64 / 1000.0;
    // The share of the CPU the server used (its CPU clock) that is in answers.
    let spent = |p: &Point| {
        let in_answers = p.m.ok as f64 * cost.cpu_ms as f64 * 1e6;
        in_answers / p.cpu_ns.max(1) as f64
    };
    // ANCHOR_END: cpu_only
    let rows: Vec<_> = points
        .iter()
        .map(|p| p.row(format!("{:.2} ({:.0}%)", busy(p), 100.0 * spent(p))))
        .collect();
    let title = format!(
        "Load 1, CPU only: {clients} clients, each request {} ms of CPU, no waiting; \
         cores busy, and the share of the server's CPU time in answers",
        cost.cpu_ms
    );
    table(lab, "load_cpu", &title, "cores busy (in answers)", &rows);
    let cores = plan.cores;
    let busy_each: Vec<f64> = points.iter().map(busy).collect();
    let spent_each: Vec<f64> = points.iter().map(spent).collect();
    let over: Vec<&str> = points
        .iter()
        .filter(|p| {
            busy(p) > 1.15 * ceiling(p, plan) || !(0.7..=1.1).contains(&spent(p))
        })
        .map(|p| name(p.model))
        .collect();
    check!(
        lab,
        "cpu_ceiling",
        !points.is_empty() && over.is_empty(),
        "no model turned more than its cores into answers (one loop: 1 core, the \
         others: {cores}, 15% allowed), and in each the CPU the kernel counted went into \
         answers (70% to 110%): the work sets the ceiling; out of line: {over:?}",
        cores,
        over,
        busy_each,
        spent_each
    );
    let multi: Vec<&Point> =
        points.iter().filter(|p| ceiling(p, plan) >= cores as f64).collect();
    let best = multi.iter().map(|p| busy(p)).fold(0.0, f64::max);
    let worst = multi.iter().map(|p| busy(p)).fold(f64::INFINITY, f64::min);
    let held = best >= 0.7 * cores as f64 && worst >= 0.6 * best;
    let word = if held { "held" } else { "did not hold" };
    let others = others.cores(points.iter().map(|p| p.cpu_ns).sum());
    observe!(
        lab,
        "cpu_top",
        "the models that can use every core kept {worst:.2} to {best:.2} of {cores} \
         cores busy; \"near the core count\" (best at least 70%, lowest at least 60% of \
         it) {word} on this run, while other programs kept {others:.2} cores busy",
        worst,
        best,
        cores,
        held,
        others
    );
}
