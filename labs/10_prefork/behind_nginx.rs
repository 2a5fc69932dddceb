//! Demo section 7, nginx in front: the real nginx as a reverse proxy to the defended
//! workers. Its event loop holds every idle and slow connection at the cost of a few bytes
//! each, and passes on only whole requests, one short connection each, so the blocking
//! workers never see the attack. Skipped, with a note, where nginx is not installed.

use crate::siege::{best_of_3, siege, unharmed, Demo, Server};
use proclab::lifeline::Lifeline;
use proclab::nginx::{self, Conf};
use proclab::{check, observe, Lab, Nanos, OrDie};

pub fn run(lab: &mut Lab, d: &Demo) {
    lab.section("7. nginx in front: an event loop holds the slow and idle clients");
    d.note_limits(lab);
    // Tests only: as on a machine without nginx.
    let missing = proclab::test_removes("nginx_missing");
    let Some(bin) = nginx::find().filter(|_| !missing) else {
        observe!(
            lab,
            "nginx",
            "nginx is not installed (apt-get install -y nginx): \
            this section is skipped",
            installed = false
        );
        return;
    };
    let version = nginx::version(&bin);
    let defended = Server::start(lab, d, d.on);
    // After the workers are forked, so that only the lab holds its write end.
    let lifeline = Lifeline::new().or_die("pipe2");
    let up = defended.port;
    // ANCHOR: conf
    let http = |port: u16| {
        format!(
            "  client_header_timeout 30s;\n  client_max_body_size 1m;\n\
             \x20 client_body_buffer_size 1m;\n  proxy_max_temp_file_size 0;\n\
             \x20 server {{\n    listen 127.0.0.1:{port} backlog=4096;\n\
             \x20   location / {{ proxy_pass http://127.0.0.1:{up}; }}\n  }}\n"
        )
    };
    let connections = d.idle + d.slow + 512;
    let ngx = nginx::start(
        &bin,
        &lifeline,
        &Conf { workers: 2, connections, http: &http },
    );
    // ANCHOR_END: conf
    let ngx = match ngx {
        Ok(n) => n,
        Err(log) => {
            observe!(
                lab,
                "nginx",
                "{version} did not start ({log}): this section is \
                skipped",
                installed = true,
                started = false,
                version,
                log
            );
            defended.stop(lab);
            return;
        }
    };
    let (port, prefix) = (ngx.port, ngx.prefix.display().to_string());
    let workers: Vec<i32> = ngx.workers.iter().map(|w| w.as_raw()).collect();
    observe!(lab, "nginx", "{version} on 127.0.0.1:{port} proxies to the workers on \
        port {up}: master {master_pid}, workers {workers:?}; its sentinel {sentinel_pid} \
        kills nginx's group and removes {prefix} if the lab dies",
        installed = true, started = true, version, port, up,
        master_pid = ngx.master.as_raw(), workers, sentinel_pid = ngx.sentinel.as_raw(),
        prefix);

    // ANCHOR: behind
    let bypass = proclab::test_removes("nginx_bypassed"); // tests only
    let (s, tries) = best_of_3(
        || {
            let mut plan = d.plan(port, true, true); // attack and probe at nginx
            if bypass {
                plan.port = up;
            }
            siege(&defended, plan)
        },
        unharmed,
    );
    ngx.stop();
    defended.stop(lab);
    // ANCHOR_END: behind
    let (idle, slow, n) = (d.idle, d.slow, d.workers);
    let (held, queued, free) = (s.front.established, s.server.queued, s.free);
    let (share, p99) = (s.out.share(), s.out.p99());
    let p99_text = p99.map_or("over 500 ms".into(), |p| Nanos(p).to_string());
    let ok = s.out.probes.iter().filter(|p| p.is_some()).count();
    let probes = s.out.probes.len();
    observe!(lab, "behind_nginx", "{idle} idle and {slow} slow connections to nginx: \
        mid-attack nginx held {held} connections, the workers' accept queue held {queued} \
        and {free} of {n} workers were free; the probe through nginx got {ok} of {probes} \
        requests answered ({share:.1}%), p99 {p99_text}",
        idle, slow, held, queued, free, n, ok, probes, share, p99_text,
        p99_ms = p99.map(|p| p.as_millis() as u64), tries);
    check!(lab, "nginx_serves", unharmed(&s),
        "with nginx in front a normal client is served during {idle} idle and {slow} \
         slow connections: {share:.1}% answered (at least 99%), p99 {p99_text} (at most \
         100 ms; try {tries} of at most 3)", share, p99_text, tries);
}
