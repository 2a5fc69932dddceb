//! Plumbing for section 5: this section's nginx (a master and two workers, each answering
//! with its pid), run by the harness's `proclab::nginx` from a temporary prefix on
//! 127.0.0.1 with its sentinel, and a one-request client.

use proclab::lifeline::Lifeline;
use proclab::nginx::{self, Conf, Nginx};
use std::path::Path;

/// nginx with two workers on a free port, each answering `worker $pid`.
pub fn start(bin: &Path, lifeline: &Lifeline) -> Result<Nginx, String> {
    let http = |port: u16| {
        format!(
            "  server {{\n    listen 127.0.0.1:{port};\n    default_type text/plain;\n\
             \x20   return 200 \"worker $pid\\n\";\n  }}\n"
        )
    };
    nginx::start(bin, lifeline, &Conf { workers: 2, connections: 64, http: &http })
}

/// `GET /` on 127.0.0.1:`port`: the worker that answered (nginx's `$pid`), if any.
pub fn get(port: u16) -> Option<i32> {
    let reply = nginx::get(port)?;
    let ok = reply.starts_with("HTTP/1.1 200");
    let body = reply.split("\r\n\r\n").nth(1)?;
    let pid = body.trim().strip_prefix("worker ")?.parse().ok()?;
    ok.then_some(pid)
}
