//! `lab all`: run every lab (or the ones named) and print a table of verdicts; under it,
//! the checks that failed in each lab that was not verified.

use crate::roster::LabInfo;
use crate::{bin_dir, run, verdict_word, Outcome};

/// What a lab's `--json` verdict says: how many checks, which failed.
struct Verdict {
    checks: usize,
    failed: Vec<String>,
    error: Option<String>,
}

fn verdict_of(out: &Outcome) -> Verdict {
    let v = out
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|v| v["event"] == "verdict");
    let Some(v) = v else {
        return Verdict { checks: 0, failed: Vec::new(), error: None };
    };
    Verdict {
        checks: v["checks"].as_u64().unwrap_or(0) as usize,
        failed: v["failed"]
            .as_array()
            .map(|a| {
                a.iter().filter_map(|n| n.as_str().map(String::from)).collect()
            })
            .unwrap_or_default(),
        error: v["error"].as_str().map(String::from),
    }
}

pub fn all(labs: &[&'static LabInfo]) {
    let dir = bin_dir(false);
    let mut rows = Vec::new();
    for l in labs {
        eprintln!("running {} ...", l.name);
        let out = run(&dir, l, true);
        if let Some(sig) = out.signal {
            // Killed (Ctrl-C reaches the whole process group): no verdict to report, and
            // never a false "not observed". Stop here, as an interrupted make would.
            let name = nix::sys::signal::Signal::try_from(sig)
                .map(|s| s.as_str())
                .unwrap_or("a signal");
            eprintln!("{} was interrupted by {name}: stopping", l.name);
            std::process::exit(128 + sig);
        }
        let v = verdict_of(&out);
        rows.push((l, out.code, v, out.secs));
    }
    println!("\n  lab                        verdict         checks   time");
    println!("  -------------------------- --------------- -------- ------");
    for (l, code, v, secs) in &rows {
        let passed = v.checks.saturating_sub(v.failed.len());
        println!(
            "  {:02} {:<23} {:<15} {:>3}/{:<4} {:>5.1}s",
            l.number,
            l.name,
            verdict_word(*code),
            passed,
            v.checks,
            secs
        );
    }
    let bad: Vec<_> = rows.iter().filter(|r| r.1 != Some(0)).collect();
    for (l, code, v, _) in &bad {
        let why = match (&v.error, v.failed.is_empty()) {
            (Some(e), _) => format!("could not run: {e}"),
            (None, false) => format!("failed checks: {}", v.failed.join(", ")),
            (None, true) => format!("no verdict (exit {code:?})"),
        };
        println!("  {:02} {}: {why}", l.number, l.name);
    }
    println!("\n  {} of {} labs verified.", rows.len() - bad.len(), rows.len());
    std::process::exit(if bad.is_empty() { 0 } else { 1 });
}
