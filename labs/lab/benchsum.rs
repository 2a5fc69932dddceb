//! Summaries of criterion's results for the book: its estimates (target/criterion) as one
//! table per group. Rust only: the comparison with C is `benches/versus_c`, in
//! alternating rounds, which writes its own tables. Used by `lab benchmarks`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

/// The criterion groups, in the order `lab benchmarks` runs them, with their bench target.
pub const GROUPS: &[(&str, &str)] = &[
    ("spawn", "threads_vs_processes"),
    ("roundtrip", "threads_vs_processes"),
    ("bulk", "threads_vs_processes"),
    ("compute", "threads_vs_processes"),
    ("pool", "pool"),
];

/// One criterion benchmark: `group/function[/parameter]`, its median and its throughput.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    pub group: String,
    pub id: String,
    pub median_ns: f64,
    /// Bytes per iteration, when the bench declared a throughput.
    pub bytes: Option<u64>,
    /// Elements per iteration, when the bench declared one.
    pub elements: Option<u64>,
}

fn find_files(dir: &Path, name: &str, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            find_files(&p, name, out);
        } else if p.file_name().is_some_and(|n| n == name)
            && p.parent().is_some_and(|d| d.ends_with("new"))
        {
            out.push(p);
        }
    }
}

/// Every benchmark criterion has results for under `dir` (target/criterion), written
/// at or after `since` when given (so that a bench removed from the code, or not run
/// this time, does not bring back an old figure).
pub fn collect(dir: &Path, since: Option<SystemTime>) -> Vec<BenchResult> {
    let mut files = Vec::new();
    find_files(dir, "benchmark.json", &mut files);
    let mut out = Vec::new();
    for f in files {
        let est_path = f.with_file_name("estimates.json");
        let fresh = |p: &Path| {
            let m = std::fs::metadata(p).and_then(|m| m.modified());
            since.is_none_or(|s| m.is_ok_and(|m| m >= s))
        };
        if !fresh(&est_path) {
            continue;
        }
        let (Ok(meta), Ok(est)) =
            (std::fs::read_to_string(&f), std::fs::read_to_string(&est_path))
        else {
            continue;
        };
        let (Ok(meta), Ok(est)) = (
            serde_json::from_str::<serde_json::Value>(&meta),
            serde_json::from_str::<serde_json::Value>(&est),
        ) else {
            continue;
        };
        let Some(median_ns) = est["median"]["point_estimate"].as_f64() else {
            continue;
        };
        out.push(BenchResult {
            group: meta["group_id"].as_str().unwrap_or("").to_string(),
            id: meta["full_id"].as_str().unwrap_or("").to_string(),
            median_ns,
            bytes: meta["throughput"]["Bytes"]
                .as_u64()
                .or_else(|| meta["throughput"]["BytesDecimal"].as_u64()),
            elements: meta["throughput"]["Elements"].as_u64(),
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// Results by group, in id order.
pub fn by_group(results: &[BenchResult]) -> BTreeMap<String, Vec<BenchResult>> {
    let mut m: BTreeMap<String, Vec<BenchResult>> = BTreeMap::new();
    for r in results {
        m.entry(r.group.clone()).or_default().push(r.clone());
    }
    m
}

fn fmt_ns(ns: f64) -> String {
    proclab::measure::fmt_duration(std::time::Duration::from_nanos(
        ns.round() as u64
    ))
}

/// The table for one group: id, criterion's median time per iteration, and the
/// throughput it implies (GiB/s of bytes, or elements per second; higher is faster).
pub fn table(rows: &[BenchResult]) -> String {
    let mut lines =
        vec![format!("{:<44} {:>12} {:>14}", "bench", "median", "throughput")];
    for r in rows {
        let thr = match (r.bytes, r.elements) {
            (Some(b), _) => {
                format!(
                    "{:.2} GiB/s",
                    b as f64 / r.median_ns * 1e9 / (1u64 << 30) as f64
                )
            }
            (None, Some(e)) => {
                let per_s = e as f64 / r.median_ns * 1e9;
                if per_s >= 1e6 {
                    format!("{:.2} M/s", per_s / 1e6)
                } else {
                    format!("{:.2} K/s", per_s / 1e3)
                }
            }
            _ => String::new(),
        };
        lines.push(
            format!("{:<44} {:>12} {:>14}", r.id, fmt_ns(r.median_ns), thr)
                .trim_end()
                .to_string(),
        );
    }
    lines.join("\n") + "\n"
}
