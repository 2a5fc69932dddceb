//! `--why`: the system calls of one iteration of each side, counted by `strace -f -c`
//! (this program re-run on one side alone, children followed). Each side runs once
//! with K and once with 2K iterations; the difference over K leaves out the start-up,
//! the warm-up and the round's set-up, which are not the work of an iteration.

use crate::report::PairResult;
use std::collections::BTreeMap;
use std::process::Command;

pub type Calls = BTreeMap<String, f64>;

pub fn count_all(results: &mut [PairResult], with_c: bool) {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!(
            "versus_c: strace not found: no system-call counts (install strace)"
        );
        return;
    }
    for r in results.iter_mut() {
        let k = (r.iters / 4).max(4);
        r.calls_rust = per_iteration("rust", r.pair.name, k);
        if with_c {
            r.calls_c = per_iteration("c", r.pair.name, k);
        }
        eprintln!("versus_c: {} counted", r.pair.id());
    }
}

fn per_iteration(side: &str, name: &str, k: usize) -> Option<Calls> {
    let (one, two) = (counts(side, name, k)?, counts(side, name, 2 * k)?);
    let mut per = Calls::new();
    for call in one.keys().chain(two.keys()) {
        let get =
            |m: &BTreeMap<String, u64>| m.get(call).copied().unwrap_or(0) as f64;
        per.insert(call.clone(), (get(&two) - get(&one)) / k as f64);
    }
    Some(per)
}

/// strace -f -c of one round of `iters` iterations (no warm-up) on `side`.
fn counts(side: &str, name: &str, iters: usize) -> Option<BTreeMap<String, u64>> {
    let me = std::env::current_exe().ok()?;
    let file = std::env::temp_dir()
        .join(format!("versus_c-strace-{}-{side}-{iters}.txt", std::process::id()));
    let st = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(&file)
        .arg("--")
        .arg(&me)
        .args(["--side", side, "--rounds", "1", "--warm", "0"])
        .args(["--iters", &iters.to_string(), "--exact", name])
        .status()
        .ok()?;
    let text = std::fs::read_to_string(&file).ok();
    let _ = std::fs::remove_file(&file);
    if !st.success() {
        eprintln!("versus_c: strace of {name} on side {side} failed: {st}");
        return None;
    }
    Some(parse(&text?))
}

/// strace -c's table: `% time  seconds  usecs/call  calls  [errors]  syscall`.
pub fn parse(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            let (&name, calls) = (t.last()?, t.get(3)?.parse().ok()?);
            (t.len() >= 5 && name != "total").then(|| (name.to_string(), calls))
        })
        .collect()
}
