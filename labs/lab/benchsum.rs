//! Summaries of benchmark results for the book: criterion's estimates (target/criterion) as
//! one table per group, beside the plain C reference figures of `refbench.c` where a bench
//! has the same name. Used by `lab benchmarks`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// One criterion benchmark: `group/function[/parameter]`, its median and its throughput.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    pub group: String,
    pub id: String,
    /// The function name within the group (`fork_exit_wait`), used to match the C reference.
    pub function: String,
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

/// Every benchmark criterion has results for under `dir` (target/criterion).
pub fn collect(dir: &Path) -> Vec<BenchResult> {
    let mut files = Vec::new();
    find_files(dir, "benchmark.json", &mut files);
    let mut out = Vec::new();
    for f in files {
        let Ok(meta) = std::fs::read_to_string(&f) else {
            continue;
        };
        let Ok(est) = std::fs::read_to_string(f.with_file_name("estimates.json"))
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
            function: meta["function_id"].as_str().unwrap_or("").to_string(),
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

/// A C reference figure: median and unit (`us` or `GB/s`).
#[derive(Clone, Debug, PartialEq)]
pub struct RefFigure {
    pub median: f64,
    pub unit: String,
}

/// Parse refbench's output (`name<TAB>median<TAB>unit<TAB>samples` lines; others ignored).
pub fn parse_refbench(text: &str) -> BTreeMap<String, RefFigure> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() < 3 {
                return None;
            }
            Some((
                f[0].to_string(),
                RefFigure { median: f[1].parse().ok()?, unit: f[2].to_string() },
            ))
        })
        .collect()
}

/// The part of refbench.txt measured right after `group` (its `# right after` section), or
/// the whole text when it has no such sections.
pub fn section(text: &str, group: &str) -> String {
    let marker = format!("# right after `cargo bench -- '^{group}/'`");
    match text.find(&marker) {
        Some(at) => {
            let rest = &text[at + marker.len()..];
            rest[..rest.find("\n# ").map(|i| i + 1).unwrap_or(rest.len())]
                .to_string()
        }
        None if text.contains("# right after") => String::new(),
        None => text.to_string(),
    }
}

fn fmt_ns(ns: f64) -> String {
    proclab::measure::fmt_duration(std::time::Duration::from_nanos(
        ns.round() as u64
    ))
}

/// The table for one group: id, median, throughput, and the C reference figure with the
/// ratio where refbench has a figure of the same name as the bench's function.
pub fn table(
    rows: &[BenchResult],
    reference: &BTreeMap<String, RefFigure>,
) -> String {
    let mut lines = vec![format!(
        "{:<44} {:>12} {:>14}   {}",
        "bench", "median", "throughput", "C reference (refbench.c)"
    )];
    for r in rows {
        let thr = match (r.bytes, r.elements) {
            (Some(b), _) => format!("{:.2} GB/s", b as f64 / r.median_ns),
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
        let c = match reference.get(c_name(&r.function)) {
            Some(f) if f.unit == "us" => {
                format!(
                    "{:.1} µs, Rust/C = {:.2}",
                    f.median,
                    r.median_ns / 1e3 / f.median
                )
            }
            Some(f) if f.unit == "GB/s" => match r.bytes {
                Some(b) => format!(
                    "{:.2} GB/s, Rust/C = {:.2}",
                    f.median,
                    (b as f64 / r.median_ns) / f.median
                ),
                None => format!("{:.2} GB/s", f.median),
            },
            Some(f) => format!("{} {}", f.median, f.unit),
            None => String::new(),
        };
        lines.push(
            format!("{:<44} {:>12} {:>14}   {}", r.id, fmt_ns(r.median_ns), thr, c)
                .trim_end()
                .to_string(),
        );
    }
    lines.join("\n") + "\n"
}

/// The refbench figure a bench compares with: its own name, or the C figure that does the
/// same work under another name (`pthread_create_join` is what refbench's
/// `thread_spawn_join` calls).
fn c_name(function: &str) -> &str {
    match function {
        "pthread_create_join" => "thread_spawn_join",
        other => other,
    }
}

/// The criterion groups, in the order `lab benchmarks` runs them, each with the refbench.c
/// figures that do the same work (run right after the group, so that both are measured in
/// the same minute of the same session).
pub const GROUPS: &[(&str, &[&str])] = &[
    ("spawn", &["thread", "fork", "exec", "spawn"]),
    ("roundtrip", &["pipe_rtt", "pipe_rtt_same", "pipe_rtt_cross"]),
    ("bulk", &["pipe_bw_same", "pipe_bw_cross", "memcpy"]),
    ("compute", &[]),
    (
        "ipc",
        &[
            "pipe_rtt",
            "pipe_rtt_same",
            "pipe_rtt_cross",
            "pipe_bw",
            "pipe_bw_same",
            "pipe_bw_cross",
            "memcpy",
        ],
    ),
    ("pool", &[]),
];

/// Build `refbench.c` (from ../shared/reference beside the repository) with gcc and run the
/// `figures` named (all when empty); returns its output.
pub fn run_refbench(
    root: &Path,
    target: &Path,
    figures: &[&str],
) -> Result<String, String> {
    // Beside the repository (/work/main -> /work/shared), or beside a worktree's parent
    // (/work/wt/NAME -> /work/shared), or where PROCLAB_REFBENCH says.
    let candidates: Vec<std::path::PathBuf> = std::env::var_os("PROCLAB_REFBENCH")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain([
            root.join("../shared/reference/refbench.c"),
            root.join("../../shared/reference/refbench.c"),
        ])
        .collect();
    let Some(src) = candidates.iter().find(|p| p.exists()).cloned() else {
        return Err(format!(
            "{} not found",
            candidates[candidates.len() - 2].display()
        ));
    };
    let exe = target.join("refbench");
    let st = Command::new("gcc")
        .args(["-O2", "-pthread"])
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .status()
        .map_err(|e| format!("gcc: {e}"))?;
    if !st.success() {
        return Err(format!("gcc failed: {st}"));
    }
    let out = Command::new(&exe)
        .args(figures)
        .output()
        .map_err(|e| format!("refbench: {e}"))?;
    if !out.status.success() {
        return Err(format!("refbench failed: {}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_group_reads_its_own_reference_section() {
        let text = "# right after `cargo bench -- '^spawn/'`\nfork_exit_wait\t100\tus\t5\n# right after `cargo bench -- '^ipc/'`\nmemcpy_64MiB\t9\tGB/s\t10\n";
        assert_eq!(parse_refbench(&section(text, "spawn")).len(), 1);
        assert!(parse_refbench(&section(text, "ipc")).contains_key("memcpy_64MiB"));
        assert!(section(text, "pool").is_empty());
    }

    #[test]
    fn reference_ratio_uses_matching_function_names() {
        let reference = parse_refbench("fork_exit_wait\t100.000\tus\t2000\nmemcpy_64MiB\t10.0\tGB/s\t10\nnoise line\n");
        assert_eq!(reference.len(), 2);
        let rows = vec![BenchResult {
            group: "spawn".into(),
            id: "spawn/fork_exit_wait".into(),
            function: "fork_exit_wait".into(),
            median_ns: 110_000.0,
            bytes: None,
            elements: None,
        }];
        let t = table(&rows, &reference);
        assert!(t.contains("Rust/C = 1.10"), "{t}");
    }
}
