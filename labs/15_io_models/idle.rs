//! Load 3, idle connections plus one normal client: open --idle connections that send
//! nothing (clients between two requests), then measure one client that sends the 90%
//! waiting request. A blocking worker that accepted an idle connection sleeps in poll
//! for it; the rest wait in the kernel's accept queue, and the new client behind them.

use crate::launch::Server;
use crate::load::{self, Measured, Spec};
use crate::plan::Plan;
use crate::point::{kib, name, shape, ALL};
use crate::procview::{self, Facts};
use crate::Model;
use proclab::{check, observe, procfacts, Deadline, Lab};
use std::os::fd::OwnedFd;
use std::time::Duration;

/// The normal client behind idle connections: half a second past the window is
/// enough to see that it got nothing.
const STARVED: Duration = Duration::from_millis(500);

/// A server holding idle connections: before and after, and the normal client.
struct Held {
    model: Model,
    workers: usize,
    connected: usize,
    base: Facts,
    f: Facts,
    normal: Measured,
}

impl Held {
    /// What one more connection costs: the memory it added, per connection held.
    fn per_conn(&self) -> f64 {
        let added = self.f.held.saturating_sub(self.base.held).max(1);
        (self.f.mem_kib - self.base.mem_kib) / added as f64
    }
}

/// The server's view once it has taken what it will: held and queued stop moving,
/// with every connection in one or the other (or, after a second, some gone: a
/// server that closes idle connections).
fn settle(s: &Server, connected: usize, kstack: f64) -> Facts {
    let (top, port) = (s.pid.as_raw(), s.port);
    let (mut last, since) = ((usize::MAX, u64::MAX), std::time::Instant::now());
    let f = procfacts::poll_until(Duration::from_secs(10), || {
        std::thread::sleep(Duration::from_millis(20));
        let f = procview::server(top, port, kstack);
        let now = (f.held, f.queued);
        let all_in = f.held + f.queued as usize >= connected;
        let steady = std::mem::replace(&mut last, now) == now;
        let late = since.elapsed() > Duration::from_secs(1);
        (steady && (all_in || late)).then_some(f)
    });
    f.unwrap_or_else(|| procview::server(top, port, kstack))
}

/// Start `model`, open `n` idle connections, let it take them, then run one
/// normal client (if `normal`) while they stay open.
fn hold(
    plan: &Plan,
    model: Model,
    workers: usize,
    n: usize,
    normal: bool,
) -> (Held, Holding) {
    // ANCHOR: hold
    let s = Server::start(plan, model, workers);
    let cost = plan.mix(90);
    let _ = load::get(s.port, cost); // warm-up
    let base = procview::server(s.pid.as_raw(), s.port, plan.kstack_kib);
    let conns = load::idle(s.port, n, Deadline::after(Duration::from_secs(10)));
    let connected = conns.len();
    let f = settle(&s, connected, plan.kstack_kib);
    let (window, slow_step) = (plan.window, plan.slow_step);
    let spec =
        Spec { clients: 1, slow: 0, slow_step, window, grace: STARVED, cost };
    let normal = if normal {
        load::run(s.port, &spec, || ()).0
    } else {
        Measured::default()
    };
    (Held { model, workers, connected, base, f, normal }, Holding { s, conns })
    // ANCHOR_END: hold
}

/// A server and the idle connections it holds, until released.
struct Holding {
    s: Server,
    conns: Vec<OwnedFd>,
}

impl Holding {
    /// Stop the server, then close the idle connections.
    fn release(self) {
        self.s.stop();
        drop(self.conns);
    }
}

pub fn run(lab: &mut Lab, plan: &Plan) {
    let n = plan.idle;
    let mut all = Vec::new();
    for &model in &ALL {
        let (h, holding) = hold(plan, model, plan.workers_of(model), n, true);
        let pid = holding.s.pid.as_raw();
        let (held, queued, threads) = (h.f.held, h.f.queued, h.f.threads);
        if model == Model::Loop || model == Model::Pool {
            let who = name(model);
            observe!(
                lab,
                "holding",
                "{who}: {held} connections held, {queued} in the accept queue, \
                 {threads} threads; the normal client got {ok} answers",
                model = who,
                pid,
                held,
                queued,
                threads,
                ok = h.normal.ok
            );
        }
        holding.release();
        all.push(h);
    }
    // Prefork and the pool hold one connection per worker: what does a worker cost?
    let mut per_worker = Vec::new();
    for model in [Model::Prefork, Model::Pool] {
        let (one, holding) = hold(plan, model, 1, 1, false);
        holding.release();
        let big = all.iter().find(|h| h.model == model).expect("measured above");
        let k = big.workers.saturating_sub(1).max(1) as f64;
        per_worker.push((model, (big.f.mem_kib - one.f.mem_kib) / k));
    }
    let per_conn = |h: &Held| {
        per_worker.iter().find(|(m, _)| *m == h.model).map_or(h.per_conn(), |w| w.1)
    };
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|h| {
            let [_, _, _, errors] = h.normal.cells();
            vec![
                name(h.model).to_string(),
                shape(h.model, h.workers),
                h.f.held.to_string(),
                h.f.queued.to_string(),
                h.f.threads.to_string(),
                kib(h.f.mem_kib),
                format!("{:.1} KiB", per_conn(h)),
                h.normal.ok.to_string(),
                errors,
            ]
        })
        .collect();
    proclab::plain!(
        "\n  Load 3, {n} idle connections, then one normal client ({} ms CPU + {} ms \
         waiting) for {} ms",
        plan.mix(90).cpu_ms,
        plan.mix(90).wait_ms,
        plan.window.as_millis()
    );
    let headers = [
        "model", "workers", "held", "in queue", "threads", "memory", "per conn",
        "answers", "errors",
    ];
    lab.table("load_idle", &headers, &rows);
    judge(lab, plan, &all, &per_conn);
}

fn judge(
    lab: &mut Lab,
    plan: &Plan,
    all: &[Held],
    per_conn: &dyn Fn(&Held) -> f64,
) {
    let of = |m: Model| all.iter().find(|h| h.model == m);
    let Some(lp) = of(Model::Loop) else { return };
    let (want, connected, held) = (plan.idle, lp.connected, lp.f.held);
    let (threads, processes, ok) = (lp.f.threads, lp.f.pids.len(), lp.normal.ok);
    check!(
        lab,
        "loop_holds_idle",
        connected == want && held >= connected && threads == 1 && processes == 1
            && ok >= 1 && lp.normal.errors == 0,
        "one event loop held {held} of {connected} idle connections ({want} opened) in \
         {processes} process with {threads} thread, and still answered the normal \
         client {ok} times, without an error",
        want,
        connected,
        held,
        threads,
        processes,
        ok
    );
    let blocking: Vec<&Held> = all
        .iter()
        .filter(|h| matches!(h.model, Model::Prefork | Model::Pool))
        .collect();
    let starved =
        blocking.iter().all(|h| h.normal.ok == 0 && h.f.held == h.workers);
    let answers: Vec<u64> = blocking.iter().map(|h| h.normal.ok).collect();
    let held: Vec<usize> = blocking.iter().map(|h| h.f.held).collect();
    let queued: Vec<u64> = blocking.iter().map(|h| h.f.queued).collect();
    let n = plan.workers;
    check!(
        lab,
        "blocking_starve",
        !blocking.is_empty() && starved,
        "prefork and the pool, {n} workers each: they held {held:?} idle connections, \
         one per worker, {queued:?} waited in the accept queue, and the normal client \
         got {answers:?} answers",
        n,
        held,
        queued,
        answers
    );
    let (Some(t), Some(p)) = (of(Model::Threads), of(Model::Prefork)) else {
        return;
    };
    let (loop_kib, thread_kib, process_kib) =
        (per_conn(lp), per_conn(t), per_conn(p));
    let floor = loop_kib.max(0.0) * 4.0;
    check!(
        lab,
        "memory_per_connection",
        thread_kib >= floor && process_kib >= floor && thread_kib >= plan.kstack_kib,
        "a connection costs {loop_kib:.1} KiB in the event loop, {thread_kib:.1} KiB \
         as a thread (its stack pages and a kernel stack), {process_kib:.1} KiB as a \
         process: at least 4 times the loop's",
        loop_kib,
        thread_kib,
        process_kib
    );
}
