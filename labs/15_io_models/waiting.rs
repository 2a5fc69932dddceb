//! Load 2, 90% waiting: a request is 10% CPU and 90% waiting. A blocking worker sleeps
//! through the wait, so N of them answer at most N / T requests a second; the event
//! loop keeps no thread for a wait (a timer does), so one thread has many requests
//! waiting at once: by Little's law, requests/s x W.

use crate::load::{Spec, GRACE};
use crate::plan::Plan;
use crate::point::{measure, table, Point, ALL};
use crate::Model;
use proclab::{check, observe, Lab};

pub fn run(lab: &mut Lab, plan: &Plan) -> Vec<Point> {
    let cost = plan.mix(90);
    let (clients, window, slow_step) = (plan.clients, plan.window, plan.slow_step);
    let spec = Spec { clients, slow: 0, slow_step, window, grace: GRACE, cost };
    // ANCHOR: waiting
    let points: Vec<Point> =
        ALL.iter().map(|&m| measure(plan, m, plan.workers_of(m), &spec)).collect();
    // Requests waiting at once, on average (Little's law: rate x time).
    let waiting = |p: &Point| p.m.rps * cost.wait_ms as f64 / 1000.0;
    // ANCHOR_END: waiting
    let rows: Vec<_> =
        points.iter().map(|p| p.row(format!("{:.1}", waiting(p)))).collect();
    let title = format!(
        "Load 2, 90% waiting: {clients} clients, each request {} ms of CPU, then {} \
         ms of waiting",
        cost.cpu_ms, cost.wait_ms
    );
    table(lab, "load_waiting", &title, "waiting at once", &rows);
    let Some(lp) = points.iter().find(|p| p.model == Model::Loop) else {
        return points;
    };
    let (threads, processes, at_once) =
        (lp.f.threads, lp.f.pids.len(), waiting(lp));
    check!(
        lab,
        "timer_not_thread",
        threads == 1 && processes == 1 && at_once >= 1.25,
        "one event loop, {processes} process with {threads} thread, had {at_once:.1} \
         requests waiting at once (more than one: at least 1.25): each wait is a timer, not a thread",
        processes,
        threads,
        at_once,
        rps = lp.m.rps
    );
    if let Some(pool) = points.iter().find(|p| p.model == Model::Pool) {
        let (n, rps) = (pool.workers, pool.m.rps);
        let bound = n as f64 * 1000.0 / plan.request_ms as f64;
        observe!(
            lab,
            "pool_bound",
            "the pool's {n} threads answered {rps:.0} requests/s, against their bound \
             of N / T = {bound:.0}: each sleeps through its request's wait",
            n,
            rps,
            bound
        );
    }
    points
}
