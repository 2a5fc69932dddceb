//! Section 1, one app, five servers: start every model at once, ask each the same
//! request, and read from /proc what each is made of (processes, threads, where they
//! sleep, memory); and what one kernel stack costs, which every thread adds.

use crate::app::Cost;
use crate::launch::Server;
use crate::load;
use crate::plan::Plan;
use crate::point::{kib, name, shape, ALL};
use crate::procview;
use nix::unistd::getpid;
use proclab::measure::fmt_duration;
use proclab::{check, observe, Lab, Nanos};

pub fn run(lab: &mut Lab, plan: &Plan) {
    // ANCHOR: start_all
    let servers: Vec<Server> =
        ALL.iter().map(|&m| Server::start(plan, m, plan.workers_of(m))).collect();
    let cost = Cost { cpu_ms: 1, wait_ms: 100 }; // all five at once
    let answers: Vec<_> = std::thread::scope(|t| {
        let asks: Vec<_> = servers
            .iter()
            .map(|s| t.spawn(move || load::get(s.port, cost)))
            .collect();
        asks.into_iter().map(|a| a.join().unwrap_or(Err("panic".into()))).collect()
    });
    // ANCHOR_END: start_all
    lab.show_tree(getpid());
    let mut rows = Vec::new();
    let (mut same, mut slowest_ok) = (0, true);
    let mut took_ns = Vec::new();
    for (s, a) in servers.iter().zip(&answers) {
        let f = procview::server(s.pid.as_raw(), s.port, plan.kstack_kib);
        let (body, took) = match a {
            Ok((body, took)) => (body.clone(), fmt_duration(*took)),
            Err(e) => (format!("no answer: {e}"), "-".into()),
        };
        same += body.ends_with(": cpu 1 ms, wait 100 ms") as usize;
        let t = a.as_ref().map_or(Nanos::default(), |(_, t)| Nanos(*t));
        slowest_ok &= t.0.as_millis() >= 101; // it did the work and the wait
        took_ns.push(t);
        let model = name(s.model).to_string();
        let procs = f.pids.len().to_string();
        let (threads, mem) = (f.threads.to_string(), kib(f.mem_kib));
        let n = shape(s.model, s.workers);
        rows.push(vec![model, n, procs, threads, f.wchan.clone(), mem, took, body]);
    }
    let headers = [
        "model",
        "workers",
        "processes",
        "threads",
        "sleeps in",
        "memory",
        "took",
        "answer",
    ];
    lab.table("models", &headers, &rows);
    let pids: Vec<i32> = servers.iter().map(|s| s.pid.as_raw()).collect();
    let (kstack_kib, how) = (plan.kstack_kib, plan.kstack_how.clone());
    observe!(
        lab,
        "kernel_stack",
        "a thread's memory is its pages in PSS plus one kernel stack of \
         {kstack_kib} KiB: {how}",
        kstack_kib,
        how,
        pids
    );
    for s in servers {
        s.stop();
    }
    let n = answers.len();
    check!(
        lab,
        "same_app",
        same == n && slowest_ok,
        "{same} of {n} servers answered GET /?cpu_ms=1&wait_ms=100 with the app's \
         answer, each in at least the 101 ms the request costs",
        same,
        n,
        took_ns
    );
}
