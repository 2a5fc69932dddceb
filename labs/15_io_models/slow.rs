//! Load 4, slow clients: --slow clients send their request one byte every
//! --slow-step-ms (a phone on a bad network), beside the normal closed loop. A blocking
//! worker waits for every byte of the slow request it took; an event loop only sees a
//! readable socket now and then, and serves the others meanwhile.

use crate::load::{Spec, GRACE};
use crate::plan::Plan;
use crate::point::{measure, table, Point, ALL};
use crate::Model;
use proclab::{observe, Lab};

pub fn run(lab: &mut Lab, plan: &Plan) {
    let cost = plan.mix(90);
    let (clients, slow, slow_step) = (plan.clients, plan.slow, plan.slow_step);
    // A slow request takes a while to arrive.
    let window = plan.window * 3 / 2;
    // ANCHOR: slow
    let spec = Spec { clients, slow, slow_step, window, grace: GRACE, cost };
    let points: Vec<Point> =
        ALL.iter().map(|&m| measure(plan, m, plan.workers_of(m), &spec)).collect();
    // ANCHOR_END: slow
    let rows: Vec<_> =
        points.iter().map(|p| p.row(p.m.slow_ok.to_string())).collect();
    let bytes = crate::load::request(cost).len();
    let title = format!(
        "Load 4, slow clients: {slow} clients send their {bytes}-byte request a byte \
         every {} ms, beside {clients} normal ones ({} ms CPU + {} ms waiting), for \
         {} ms; the figures are the normal clients'",
        slow_step.as_millis(),
        cost.cpu_ms,
        cost.wait_ms,
        window.as_millis()
    );
    table(lab, "load_slow", &title, "slow done", &rows);
    let rps =
        |m: Model| points.iter().find(|p| p.model == m).map_or(0.0, |p| p.m.rps);
    let (pool, lp) = (rps(Model::Pool), rps(Model::Loop));
    let n = plan.workers;
    observe!(
        lab,
        "slow",
        "with {slow} slow clients the pool's {n} threads answered the normal clients \
         {pool:.0} times a second, one event loop {lp:.0}",
        slow,
        n,
        pool,
        loop_rps = lp
    );
}
