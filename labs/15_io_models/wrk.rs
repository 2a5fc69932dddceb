//! The cross-check: wrk (an outside load generator, one thread with epoll) against each
//! model under load 2, beside the lab's own client. Skipped with a note without wrk.

use crate::launch::Server;
use crate::node_run::which;
use crate::plan::Plan;
use crate::point::{name, Point, ALL};
use crate::Model;
use nix::unistd::Pid;
use proclab::lifeline::die_with_parent;
use proclab::measure::fmt_duration;
use proclab::{cleanup, observe, procfacts, Lab};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

/// What wrk printed, the figures used here.
#[derive(Debug, Default, PartialEq)]
struct Wrk {
    rps: f64,
    p50: Option<Duration>,
    p99: Option<Duration>,
    errors: u64,
}

pub fn run(lab: &mut Lab, plan: &Plan, ours: &[Point]) {
    let Some(wrk) = which("wrk") else {
        let why = "wrk is not installed (apt-get install -y wrk): the cross-check is skipped";
        observe!(lab, "wrk", "{why}", installed = false);
        return;
    };
    let cost = plan.mix(90);
    let url = format!("/?cpu_ms={}&wait_ms={}", cost.cpu_ms, cost.wait_ms);
    let models: &[Model] = if plan.quick { &[Model::Loop] } else { &ALL };
    let (mut rows, mut agree, mut ratios) = (Vec::new(), 0, Vec::new());
    for &model in models {
        let s = Server::start(plan, model, plan.workers_of(model));
        // ANCHOR: wrk
        let target = format!("http://127.0.0.1:{}{url}", s.port);
        let c = format!("-c{}", plan.clients);
        let args =
            ["-t1", &c, "-d1s", "--latency", "-H", "Connection: close", &target];
        let got = run_wrk(&wrk, &args);
        // ANCHOR_END: wrk
        s.stop();
        let ours = ours.iter().find(|p| p.model == model).map(|p| p.m.rps);
        let d = |d: Option<Duration>| d.map_or("-".into(), fmt_duration);
        let (w, ratio) = match (&got, ours) {
            (Ok(w), Some(o)) if o > 0.0 => (w, Some(w.rps / o)),
            (Ok(w), _) => (w, None),
            (Err(e), _) => {
                rows.push(vec![name(model).into(), "-".into(), e.clone()]);
                continue;
            }
        };
        agree += ratio.is_some_and(|r| (0.75..=1.33).contains(&r)) as usize;
        ratios.extend(ratio);
        rows.push(vec![
            name(model).into(),
            ours.map_or("-".into(), |o| format!("{o:.1}")),
            format!("{:.1}", w.rps),
            ratio.map_or("-".into(), |r| format!("{r:.2}")),
            d(w.p50),
            d(w.p99),
            w.errors.to_string(),
        ]);
    }
    proclab::plain!(
        "\n  wrk, load 2 again: -t1 -c{} -d1s, Connection: close",
        plan.clients
    );
    let headers = [
        "model",
        "lab req/s",
        "wrk req/s",
        "wrk/lab",
        "wrk p50",
        "wrk p99",
        "wrk errors",
    ];
    lab.table("wrk_table", &headers, &rows);
    let n = ratios.len();
    observe!(
        lab,
        "wrk",
        "wrk and the lab's client agreed within 25% on {agree} of {n} models (another \
         run, another minute: a shared machine moves both)",
        installed = true,
        agree,
        n,
        ratios
    );
}

/// Run wrk (it dies with the lab), bounded to 10 s; what it printed.
fn run_wrk(wrk: &std::path::Path, args: &[&str]) -> Result<Wrk, String> {
    let mut cmd = Command::new(wrk);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let lab = nix::unistd::getpid().as_raw();
    // SAFETY: runs in the child between fork and exec: prctl, getppid, _exit.
    unsafe {
        cmd.pre_exec(move || {
            die_with_parent(lab);
            Ok(())
        })
    };
    let mut child = cmd.spawn().map_err(|e| format!("cannot run wrk: {e}"))?;
    let pid = Pid::from_raw(child.id() as i32);
    cleanup::track(pid);
    let done = procfacts::poll_until(Duration::from_secs(10), || {
        child.try_wait().ok().flatten()
    });
    if done.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    cleanup::forget(pid);
    let text = String::from_utf8_lossy(&out.stdout);
    parse(&text).ok_or_else(|| {
        format!("wrk said: {}", String::from_utf8_lossy(&out.stderr).trim())
    })
}

/// `10.21ms`, `850.00us`, `1.20s` as wrk prints them.
fn duration(s: &str) -> Option<Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let v: f64 = num.parse().ok()?;
    let ns = match unit {
        "us" => v * 1e3,
        "ms" => v * 1e6,
        "s" => v * 1e9,
        _ => return None,
    };
    Some(Duration::from_nanos(ns as u64))
}

fn parse(text: &str) -> Option<Wrk> {
    let mut w = Wrk::default();
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => w.rps = v.parse().ok()?,
            ["50%", v] => w.p50 = duration(v),
            ["99%", v] => w.p99 = duration(v),
            ["Non-2xx", "or", "3xx", "responses:", n] => {
                w.errors += n.parse::<u64>().ok()?
            }
            ["Socket", "errors:", rest @ ..] => {
                w.errors += rest
                    .iter()
                    .filter_map(|x| x.trim_matches(',').parse::<u64>().ok())
                    .sum::<u64>()
            }
            _ => {}
        }
    }
    (w.rps > 0.0 || text.contains("Requests/sec:")).then_some(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_wrk_prints() {
        let text = "Running 1s test @ http://127.0.0.1:4000/\n  1 threads and 16 connections\n  \
            Latency Distribution\n     50%   10.21ms\n     75%   11.00ms\n     99%   20.50ms\n  \
            1500 requests in 1.00s, 200.00KB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  \
            Non-2xx or 3xx responses: 4\nRequests/sec:   1497.25\nTransfer/sec:    199.71KB\n";
        let w = parse(text).unwrap();
        assert_eq!(w.rps, 1497.25);
        assert_eq!(w.p50, Some(Duration::from_micros(10_210)));
        assert_eq!(w.p99, Some(Duration::from_micros(20_500)));
        assert_eq!(w.errors, 7);
        assert_eq!(duration("850.00us"), Some(Duration::from_micros(850)));
        assert_eq!(parse("unable to connect"), None);
    }
}
