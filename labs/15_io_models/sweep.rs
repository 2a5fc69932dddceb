//! Section 4, how many workers: for I/O shares of 0%, 50% and 90%, prefork and the pool
//! with N from 1 to 4 x cores + 1 (and on past Goetz's N where it is higher), under a
//! closed loop of more clients than workers. The best N is set beside the folk rule,
//! 2 x cores + 1, and Goetz's cores x (1 + W/C); which came closer is reported.

use crate::cpuview::workers_now;
use crate::load::{Spec, GRACE};
use crate::plan::Plan;
use crate::point::{kib, measure, measure_then, Point};
use crate::rule::{best_n, closer, goetz, ns, show};
use crate::Model;
use proclab::{check, observe, plain, Lab};

pub fn run(lab: &mut Lab, plan: &Plan) {
    let (cores, folk) = (plan.cores, 2 * plan.cores + 1);
    let mut summary = Vec::new();
    let (others, mut servers_ns) = (crate::cpuview::Others::start(), 0);
    let mut bests: Vec<(u64, Option<usize>, Option<usize>)> = Vec::new();
    let mut asleep: Vec<(u64, (usize, usize))> = Vec::new();
    let look = |top: i32| {
        let mut seen = (0, 0);
        for _ in 0..10 {
            let (waiting, on_cpu) = workers_now(top);
            seen = (seen.0 + waiting, seen.1 + on_cpu);
            std::thread::sleep(plan.sweep_window / 50); // the last 20% of the window
        }
        seen
    };
    for share in [0, 50, 90] {
        let cost = plan.mix(share);
        let goetz = goetz(cores, cost);
        let ns = ns(cores, goetz, plan.quick);
        let clients = ns.last().copied().unwrap_or(1) + cores; // always a queue
        let (window, slow_step) = (plan.sweep_window, plan.slow_step);
        let spec = Spec { clients, slow: 0, slow_step, window, grace: GRACE, cost };
        // ANCHOR: sweep
        let mut points: Vec<(Point, Point)> = Vec::new();
        for &n in &ns {
            let prefork = measure(plan, Model::Prefork, n, &spec);
            let pool = match n == cores && share != 50 {
                false => measure(plan, Model::Pool, n, &spec),
                true => {
                    // Where the pool's threads are, 10 times near the window's end.
                    let (p, seen) = measure_then(plan, Model::Pool, n, &spec, look);
                    asleep.push((share, seen));
                    p
                }
            };
            points.push((prefork, pool));
        }
        servers_ns += points.iter().map(|(a, b)| a.cpu_ns + b.cpu_ns).sum::<u64>();
        let pf: Vec<_> = points.iter().map(|(a, _)| (a.workers, &a.m)).collect();
        let pl: Vec<_> = points.iter().map(|(_, b)| (b.workers, &b.m)).collect();
        let (best_pf, best_pl) = (best_n(&pf), best_n(&pl));
        // ANCHOR_END: sweep
        let rows: Vec<Vec<String>> = points
            .iter()
            .map(|(a, b)| {
                let n = a.workers;
                let rule = match (n == folk, n == goetz) {
                    (true, true) => "2c+1, Goetz",
                    (true, false) => "2c+1",
                    (false, true) => "Goetz",
                    _ => "",
                };
                let star =
                    |best: Option<usize>| if best == Some(n) { " *" } else { "" };
                let [rps_a, _, p99_a, _] = a.m.cells();
                let [rps_b, _, p99_b, _] = b.m.cells();
                vec![
                    n.to_string(),
                    rule.to_string(),
                    rps_a + star(best_pf),
                    p99_a,
                    kib(a.f.mem_kib),
                    rps_b + star(best_pl),
                    p99_b,
                    kib(b.f.mem_kib),
                ]
            })
            .collect();
        plain!(
            "\n  {share}% waiting: {} ms CPU + {} ms waiting, {clients} clients, {} ms \
             a point; * the best N",
            cost.cpu_ms,
            cost.wait_ms,
            window.as_millis()
        );
        let headers = [
            "N",
            "rule",
            "prefork req/s",
            "p99",
            "memory",
            "pool req/s",
            "p99",
            "memory",
        ];
        lab.table("sweep", &headers, &rows);
        let (c_pf, c_pl) =
            (closer(best_pf, folk, goetz), closer(best_pl, folk, goetz));
        summary.push(vec![
            format!("{share}%"),
            format!("{} + {} ms", cost.cpu_ms, cost.wait_ms),
            show(best_pf),
            show(best_pl),
            folk.to_string(),
            goetz.to_string(),
            format!("{c_pf} / {c_pl}"),
        ]);
        observe!(
            lab,
            "rule",
            "{share}% waiting: the best N was {pf} for prefork and {pl} for the pool; \
             2 x cores + 1 = {folk}, Goetz = {goetz}; closer: {c_pf} (prefork), {c_pl} \
             (pool)",
            share,
            pf = show(best_pf),
            pl = show(best_pl),
            best_prefork = best_pf,
            best_pool = best_pl,
            folk,
            goetz,
            c_pf,
            c_pl
        );
        bests.push((share, best_pf, best_pl));
    }
    plain!("\n  The worker-count rule on this run (best N: prefork / pool)");
    let headers =
        ["waiting", "C + W", "prefork", "pool", "2c+1", "Goetz", "closer"];
    lab.table("rules", &headers, &summary);
    let at = |share: u64| bests.iter().find(|b| b.0 == share).copied();
    let grows = |b0: Option<usize>, b90: Option<usize>| match (b0, b90) {
        (Some(a), Some(b)) => b >= 3 * a,
        _ => false,
    };
    let (zero, ninety) = (at(0).unwrap_or_default(), at(90).unwrap_or_default());
    let held = grows(zero.1, ninety.1) && grows(zero.2, ninety.2);
    let word = if held { "held" } else { "did not hold" };
    let others = others.cores(servers_ns);
    observe!(
        lab,
        "best_n_grows",
        "the best N at 90% waiting was at least 3 times the best N on CPU work \
         (prefork {pf0} -> {pf90}, pool {pl0} -> {pl90}): {word} on this run, while \
         other programs kept {others:.2} of {cores} cores busy",
        pf0 = show(zero.1),
        pf90 = show(ninety.1),
        pl0 = show(zero.2),
        pl90 = show(ninety.2),
        held,
        others,
        cores
    );
    judge_asleep(lab, plan, &asleep);
}

/// Of the pool's threads seen in a request, the share asleep in its waiting part, at
/// 0% and at 90% waiting.
fn judge_asleep(lab: &mut Lab, plan: &Plan, seen: &[(u64, (usize, usize))]) {
    let share = |s: u64| {
        let (waiting, on_cpu) =
            seen.iter().find(|x| x.0 == s).map_or((0, 0), |x| x.1);
        waiting as f64 / (waiting + on_cpu).max(1) as f64
    };
    let (cpu, io) = (share(0), share(90));
    let w = plan.mix(90).wait_ms as f64 / plan.request_ms as f64;
    let n = plan.cores;
    check!(
        lab,
        "workers_sleep_through_waits",
        seen.len() == 2 && io >= 0.4 && cpu <= 0.1,
        "of the {n} pool threads seen in a request, /proc found {io_pct:.0}% asleep in \
         nanosleep at 90% waiting (at least 40%; the wait is {w_pct:.0}% of a request), \
         {cpu_pct:.0}% on CPU work: a worker in its wait holds no core, so more workers fit",
        n,
        io_pct = 100.0 * io,
        w_pct = 100.0 * w,
        cpu_pct = 100.0 * cpu,
        seen = seen.iter().map(|x| x.1).collect::<Vec<_>>()
    );
}
