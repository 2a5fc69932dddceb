//! Section 2, who gets the connection: the lecture's own Node example (cluster.js, two
//! workers sharing one port), with the default policy (the master accepts and hands
//! connections round robin) and with NODE_CLUSTER_SCHED_POLICY=none (the workers accept
//! themselves), against the prefork model's blocking accept. Skipped without node.

use crate::launch::Server;
use crate::load;
use crate::node_run::{self, pid_in, which, SCRIPT};
use crate::plan::Plan;
use crate::point::kib;
use crate::procview;
use crate::Model;
use proclab::{check, observe, procfacts, Lab};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// How a server spread `order.len()` connections, one at a time, over its workers.
struct Spread {
    workers: Vec<i32>,
    order: Vec<i32>,
    /// Who answered 10 requests on one keep-alive connection.
    keepalive: Vec<i32>,
    mem_kib: f64,
}

impl Spread {
    /// The share of consecutive connections that went to another worker.
    fn alternation(&self) -> f64 {
        let pairs = self.order.windows(2);
        let (n, changed) = (pairs.len(), pairs.filter(|w| w[0] != w[1]).count());
        changed as f64 / n.max(1) as f64
    }

    fn counts(&self) -> Vec<usize> {
        self.workers
            .iter()
            .map(|w| self.order.iter().filter(|o| *o == w).count())
            .collect()
    }

    fn row(&self, who: &str) -> Vec<String> {
        let mut ka = self.keepalive.clone();
        ka.dedup();
        let ka =
            format!("{} answers, by {} worker(s)", self.keepalive.len(), ka.len());
        let counts = format!("{:?}", self.counts());
        let alt = format!("{:.0}%", 100.0 * self.alternation());
        let n = self.workers.len().to_string();
        vec![who.to_string(), n, counts, alt, ka, kib(self.mem_kib)]
    }
}

pub fn run(lab: &mut Lab, plan: &Plan) {
    let Some(node) = which("node").filter(|_| Path::new(SCRIPT).is_file()) else {
        let why = "node is not installed (apt-get install -y nodejs): skipped";
        observe!(lab, "node", "{why}", installed = false);
        return;
    };
    let version = node_run::version(&node);
    let k = if plan.quick { 12 } else { 30 };
    // ANCHOR: node_runs
    let rr = cluster(&node, None, k, plan); // the default: SCHED_RR
    let none = cluster(&node, Some("none"), k, plan); // the workers accept
    let server = Server::start(plan, Model::Prefork, 2); // 2 workers in accept4
    let ours = spread(server.port, &server_workers(&server), k, "accept");
    // ANCHOR_END: node_runs
    let ours =
        Spread { mem_kib: mem(server.pid.as_raw(), server.port, plan), ..ours };
    server.stop();
    let (rr, none) = match (rr, none) {
        (Ok(rr), Ok(none)) => (rr, none),
        (Err(e), _) | (_, Err(e)) => {
            observe!(
                lab,
                "node",
                "{version} did not serve: {e}",
                installed = true,
                error = e
            );
            return;
        }
    };
    let rows = vec![
        rr.row("node cluster, default (round robin)"),
        none.row("node cluster, NODE_CLUSTER_SCHED_POLICY=none"),
        ours.row("prefork, 2 workers blocking in accept4"),
    ];
    let headers = [
        "server",
        "workers",
        "connections each",
        "next went elsewhere",
        "keep-alive",
        "memory",
    ];
    lab.table("node_spread", &headers, &rows);
    let (alt_rr, alt_none, alt_accept) =
        (rr.alternation(), none.alternation(), ours.alternation());
    observe!(
        lab,
        "node",
        "{version}: {k} connections one at a time; the next one went to another worker \
         {rr_pct:.0}% of the time with round robin, {none_pct:.0}% with the workers \
         accepting, {accept_pct:.0}% with blocking accept",
        installed = true,
        version,
        k,
        rr_pct = 100.0 * alt_rr,
        none_pct = 100.0 * alt_none,
        accept_pct = 100.0 * alt_accept,
        rr_counts = rr.counts(),
        none_counts = none.counts(),
        accept_counts = ours.counts()
    );
    let counts = rr.counts();
    let even = counts.len() == 2 && counts.iter().all(|&c| c * 10 >= k * 4);
    check!(
        lab,
        "node_round_robin",
        even && alt_rr >= 0.9,
        "Node's default policy hands connections round robin: {counts:?} over its \
         {n} workers, and {pct:.0}% of the time the next went to the other (at least 90%)",
        counts,
        n = rr.workers.len(),
        pct = 100.0 * alt_rr
    );
    let mut by = rr.keepalive.clone();
    by.dedup();
    check!(
        lab,
        "node_keepalive_one_worker",
        rr.keepalive.len() == 10 && by.len() == 1,
        "it balances connections, not requests: {answered} of 10 requests on one \
         keep-alive connection were answered, all by {n} worker(s)",
        answered = rr.keepalive.len(),
        n = by.len()
    );
}

/// The workers of a started server (its processes other than the top one).
fn server_workers(s: &Server) -> Vec<i32> {
    procfacts::tree(s.pid.as_raw()).iter().skip(1).map(|r| r.pid).collect()
}

fn mem(top: i32, port: u16, plan: &Plan) -> f64 {
    procview::server(top, port, plan.kstack_kib).mem_kib
}

/// `k` connections one at a time, each made once every worker sleeps in a call
/// whose kernel function names `idle` (/proc/PID/wchan); then 10 requests on
/// one keep-alive connection.
fn spread(port: u16, workers: &[i32], k: usize, idle: &str) -> Spread {
    let asleep = || {
        workers
            .iter()
            .all(|&w| procfacts::wchan(w).is_some_and(|c| c.contains(idle)))
    };
    // ANCHOR: spread
    let mut order = Vec::new();
    for _ in 0..k {
        let idle = || asleep().then_some(()); // every worker waits
        procfacts::poll_until(Duration::from_secs(2), idle);
        let body = load::get(port, Default::default()).map(|(b, _)| b);
        order.push(body.ok().and_then(|b| pid_in(&b)).unwrap_or(0));
    }
    let keepalive = keepalive(port);
    Spread { workers: workers.to_vec(), order, keepalive, mem_kib: 0.0 }
    // ANCHOR_END: spread
}

/// Ten requests on one keep-alive connection: the pids that answered.
fn keepalive(port: u16) -> Vec<i32> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
    else {
        return Vec::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut by = Vec::new();
    for _ in 0..10 {
        if s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
            break;
        }
        match load::answer(&mut s) {
            Ok(body) => by.push(pid_in(&body).unwrap_or(0)),
            Err(_) => break,
        }
    }
    by
}

/// Start cluster.js with `policy`, measure its spread, stop it.
fn cluster(
    node: &Path,
    policy: Option<&str>,
    k: usize,
    plan: &Plan,
) -> Result<Spread, String> {
    let c = node_run::start(node, policy)?;
    let s = spread(c.port, &c.workers, k, "epoll_wait");
    let s = Spread { mem_kib: mem(c.master.as_raw(), c.port, plan), ..s };
    c.stop();
    Ok(s)
}
