//! One measured point (plumbing): a model with N workers under a load. Start the
//! server, warm it up with one request, run the load, read /proc at 80% of the window,
//! stop the server; and the point as a row of a table.

use crate::launch::Server;
use crate::load::{self, Measured, Spec};
use crate::plan::Plan;
use crate::procview::{self, Facts};
use crate::Model;
use proclab::Lab;

pub struct Point {
    pub model: Model,
    pub workers: usize,
    pub m: Measured,
    pub f: Facts,
    /// CPU time the server's processes used, from the warm-up's end to the last answer.
    pub cpu_ns: u64,
}

/// The model's name in the tables.
pub fn name(model: Model) -> &'static str {
    match model {
        Model::Prefork => "(a) prefork",
        Model::Threads => "(b) thread per connection",
        Model::Pool => "(b) thread pool",
        Model::Loop => "(c) one event loop",
        Model::Loops => "(d) N event loops",
    }
}

/// How many of what: `5 processes`, `1 + 1 per connection`, `1 thread`.
pub fn shape(model: Model, n: usize) -> String {
    match model {
        Model::Prefork | Model::Loops => format!("{n} processes"),
        Model::Pool => format!("{n} threads"),
        Model::Threads => "1 per conn".into(),
        Model::Loop => "1 thread".into(),
    }
}

/// Every model, in the book's order.
pub const ALL: [Model; 5] =
    [Model::Prefork, Model::Threads, Model::Pool, Model::Loop, Model::Loops];

/// Measure `model` with `workers` under `spec`.
pub fn measure(plan: &Plan, model: Model, workers: usize, spec: &Spec) -> Point {
    measure_then(plan, model, workers, spec, |_| ()).0
}

/// [`measure`], and run `also` on the server's top pid at 80% of the window.
pub fn measure_then<T>(
    plan: &Plan,
    model: Model,
    workers: usize,
    spec: &Spec,
    also: impl FnOnce(i32) -> T,
) -> (Point, T) {
    let s = Server::start(plan, model, workers);
    let _ = load::get(s.port, spec.cost); // warm-up: the first request starts lazily
    let (top, port, kstack) = (s.pid.as_raw(), s.port, plan.kstack_kib);
    let pids: Vec<i32> =
        proclab::procfacts::tree(top).iter().map(|r| r.pid).collect();
    let cpu_before = crate::cpuview::cpu_ns(&pids);
    let (m, (f, t)) =
        load::run(port, spec, || (procview::server(top, port, kstack), also(top)));
    let cpu_ns = crate::cpuview::cpu_ns(&pids).saturating_sub(cpu_before);
    s.stop();
    (Point { model, workers, m, f, cpu_ns }, t)
}

/// `12.3 MiB`, `850 KiB`.
pub fn kib(k: f64) -> String {
    if k >= 10_240.0 {
        format!("{:.1} MiB", k / 1024.0)
    } else {
        format!("{k:.0} KiB")
    }
}

impl Point {
    /// model, workers, req/s, p50, p99, errors, memory, then `extra`.
    pub fn row(&self, extra: String) -> Vec<String> {
        let [rps, p50, p99, errors] = self.m.cells();
        let (model, n) =
            (name(self.model).to_string(), shape(self.model, self.workers));
        vec![model, n, rps, p50, p99, errors, kib(self.f.mem_kib), extra]
    }

    /// The table's headers, the last one named `extra`.
    pub fn headers(extra: &'static str) -> [&'static str; 8] {
        ["model", "workers", "req/s", "p50", "p99", "errors", "memory", extra]
    }
}

/// Print the rows of a load, under a line saying what it was.
pub fn table(
    lab: &mut Lab,
    kind: &str,
    title: &str,
    extra: &'static str,
    rows: &[Vec<String>],
) {
    proclab::plain!("\n  {title}");
    lab.table(kind, &Point::headers(extra), rows);
}
