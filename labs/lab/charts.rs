//! `lab charts`: the benchmark charts, drawn from what `lab benchmarks` recorded in
//! `book/src/measured/`. From `bench-versus-c.txt`, one chart per group of the
//! Rust-against-C rounds (`versus-c-GROUP.svg`): per pair the Rust and the C median side
//! by side, the ratio (the median of per-round ratios, with its q1–q3) beside the C bar.
//! From each criterion summary `bench-GROUP.txt`, its medians (`bench-GROUP.svg`). Times
//! on a log scale, bandwidths on a linear one; 750 px wide with 13 px text, the width of
//! the book's page. Criterion's own report stays in target/criterion/GROUP/report.

use crate::chart_draw::{draw, Row, Scale, BLUE, ORANGE};
use std::path::Path;

/// One pair of a group, as recorded: the Rust and C medians (ns, or GiB/s), the ratio
/// and its q1–q3.
#[derive(Debug, PartialEq)]
pub struct Bar {
    pub name: String,
    pub rust: f64,
    pub c: f64,
    pub ratio: String,
    pub iqr: String,
}

/// A group: its name, what one iteration is, whether its figures are bandwidths.
#[derive(Debug, PartialEq)]
pub struct Group {
    pub name: String,
    pub what: String,
    pub bandwidth: bool,
    pub bars: Vec<Bar>,
}

/// `932.5 µs` -> 932500.0 (ns).
fn to_ns(value: &str, unit: &str) -> Option<f64> {
    let v: f64 = value.parse().ok()?;
    let scale = match unit {
        "ns" => 1.0,
        "µs" | "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => return None,
    };
    Some(v * scale)
}

/// The groups of a recorded `bench-versus-c.txt`: a line `group: what one iteration
/// is`, a header `pair N Rust C Rust/C q1–q3 ...`, then one row per pair, either
/// `name N 36.2 µs 24.3 µs 1.47 1.42–1.53 ...` or (bandwidths) `name N 3.21 3.24 1.01 ...`.
pub fn parse(text: &str) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    // `open`: in a group's rows; `head`: in its heading, which may take several lines.
    let (mut open, mut in_head) = (false, false);
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.first() == Some(&"pair") {
            (open, in_head) = (true, false);
            continue;
        }
        if t.is_empty() || line.starts_with(['$', '#']) {
            (open, in_head) = (false, false);
            continue;
        }
        let head = line.split_once(": ").filter(|(g, _)| !g.contains(' '));
        if let (false, Some((name, what))) = (open, head) {
            let bandwidth = name == "bandwidth";
            let (name, what) = (name.to_string(), what.to_string());
            groups.push(Group { name, what, bandwidth, bars: Vec::new() });
            in_head = true;
            continue;
        }
        if let (true, Some(g)) =
            (in_head && !line.starts_with('÷'), groups.last_mut())
        {
            g.what = format!("{} {}", g.what, line.trim());
            continue;
        }
        let (Some(g), true) = (groups.last_mut(), open && t.len() >= 7) else {
            continue;
        };
        let bar = if g.bandwidth {
            let (rust, c) = (t[2].parse().ok(), t[3].parse().ok());
            rust.zip(c).map(|(rust, c)| (rust, c, t[4], t[5]))
        } else {
            let (rust, c) = (to_ns(t[2], t[3]), to_ns(t[4], t[5]));
            rust.zip(c)
                .filter(|_| t.len() >= 8)
                .map(|(rust, c)| (rust, c, t[6], t[7]))
        };
        if let Some((rust, c, ratio, iqr)) = bar {
            let (name, ratio, iqr) =
                (t[0].to_string(), ratio.to_string(), iqr.to_string());
            g.bars.push(Bar { name, rust, c, ratio, iqr });
        }
    }
    groups.retain(|g| !g.bars.is_empty());
    groups
}

/// The chart of one group of the rounds against C: per pair, the Rust bar and the C
/// bar, the ratio beside the C one.
pub fn render(g: &Group) -> String {
    let values: Vec<f64> = g.bars.iter().flat_map(|b| [b.rust, b.c]).collect();
    let scale = Scale::of(&values, g.bandwidth);
    let blocks: Vec<Vec<Row>> = g
        .bars
        .iter()
        .map(|b| {
            let ratio = format!("  Rust/C {} ({})", b.ratio, b.iqr);
            vec![
                Row { label: b.name.clone(), v: b.rust, colour: BLUE },
                Row { label: ratio, v: b.c, colour: ORANGE },
            ]
        })
        .collect();
    let title =
        format!("{}: Rust and C, the same work in alternating rounds", g.name);
    let kind =
        if g.bandwidth { "GiB/s, higher is faster" } else { "time, log scale" };
    let note = format!("blue: Rust, orange: C (medians over the rounds; {kind})");
    draw(&title, &g.what, &blocks, &scale, &note)
}

/// The rows of a recorded criterion summary (`bench-GROUP.txt`):
/// `group/way[/size]  median unit  [throughput]`, as (way[/size], ns).
pub fn parse_medians(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with(['$', '#']))
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            let name = t.first()?.split_once('/')?.1.to_string();
            Some((name, to_ns(t.get(1)?, t.get(2)?)?))
        })
        .collect()
}

/// The chart of one criterion group: a bar per bench, its median time; the benches
/// of one way (`processes/2^16`, `processes/2^20`, ...) in one block.
pub fn render_medians(group: &str, rows: &[(String, f64)]) -> String {
    let values: Vec<f64> = rows.iter().map(|r| r.1).collect();
    let scale = Scale::of(&values, false);
    let way = |name: &str| name.rsplit_once('/').map(|(w, _)| w.to_string());
    let mut blocks: Vec<Vec<Row>> = Vec::new();
    for (i, (name, ns)) in rows.iter().enumerate() {
        let same = i > 0 && way(name).is_some() && way(name) == way(&rows[i - 1].0);
        if !same || blocks.is_empty() {
            blocks.push(Vec::new());
        }
        let row = Row { label: name.clone(), v: *ns, colour: BLUE };
        blocks.last_mut().unwrap().push(row);
    }
    let title = format!("{group}: the median time of one iteration, per bench");
    let what = format!("criterion's medians: cargo bench -- '^{group}/'");
    let note =
        "time, log scale; shorter is faster (Rust against C: the charts of that section)";
    draw(&title, &what, &blocks, &scale, note)
}

/// `lab charts`: a chart for every group of the recorded `bench-versus-c.txt`
/// (`versus-c-GROUP.svg`) and of each criterion summary (`bench-GROUP.svg`), or only
/// the groups named.
pub fn charts(only: &[String]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/measured");
    let wanted = |g: &str| only.is_empty() || only.iter().any(|o| o == g);
    let path = dir.join("bench-versus-c.txt");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            for g in parse(&text).iter().filter(|g| wanted(&g.name)) {
                let out = dir.join(format!("versus-c-{}.svg", g.name));
                std::fs::write(&out, render(g)).expect("write the chart");
                eprintln!("{} pairs -> {}", g.bars.len(), out.display());
            }
        }
        Err(_) => eprintln!(
            "note: no {}: run `cargo run --release --bin lab -- benchmarks`",
            path.display()
        ),
    }
    for (group, _) in crate::benchsum::GROUPS.iter().filter(|(g, _)| wanted(g)) {
        let Ok(text) =
            std::fs::read_to_string(dir.join(format!("bench-{group}.txt")))
        else {
            continue;
        };
        let rows = parse_medians(&text);
        if !rows.is_empty() {
            let out = dir.join(format!("bench-{group}.svg"));
            std::fs::write(&out, render_medians(group, &rows))
                .expect("write the chart");
            eprintln!("{} benches -> {}", rows.len(), out.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_rounds_read_as_groups_of_bars() {
        let text = "$ cargo bench --bench versus_c -- --why\n# recorded by `lab benchmarks`\n\
            Rust against C: the same work.\n\n\
            spawn: one iteration starts a worker and waits for it\n\
            pair  N  Rust  C Rust/C  q1–q3  min–max  C own Rust/own\n\
            fork_exit_wait   100  207.8 µs  216.5 µs   1.03  0.98–1.30  0.29–1.50  147.6 µs  1.39\n\
            vfork_true_wait   30   1.34 ms   1.35 ms   1.18  0.82–1.60  0.38–4.35   1.34 ms  1.02\n\n\
            bandwidth: GiB/s of the median iteration\n\
            pair  N  Rust  C Rust/C  q1–q3  min–max ÷memcpy  C own Rust/own\n\
            memcpy_64KiB  400  29.22  28.96   0.99  0.97–1.00  0.56–1.02  1.00  29.38  0.99\n\n\
            why: each ratio beside what was measured\n\
            fork_exit_wait   1.03  within 1.00 ± 0.05; the same system calls\n";
        let groups = parse(text);
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert_eq!(groups[0].name, "spawn");
        let b = &groups[0].bars[1];
        assert_eq!((b.rust, b.c), (1.34e6, 1.35e6));
        assert_eq!((b.ratio.as_str(), b.iqr.as_str()), ("1.18", "0.82–1.60"));
        assert!(groups[1].bandwidth && groups[1].bars[0].rust == 29.22);
        let svg = render(&groups[0]);
        assert!(svg.contains("Rust/C 1.03 (0.98–1.30)") && svg.contains("208 µs"));
    }

    #[test]
    fn a_criterion_summary_reads_as_bars_in_blocks_per_way() {
        let text = "$ cargo bench --bench threads_vs_processes -- '^compute/'\n\
            # recorded by `lab benchmarks`\n\
            bench                                              median     throughput\n\
            compute/processes/2^16                            1.94 ms      33.75 M/s\n\
            compute/processes/2^20                            5.80 ms     180.86 M/s\n\
            compute/rayon/2^16                               120.5 µs     543.82 M/s\n";
        let rows = parse_medians(text);
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(rows[2], ("rayon/2^16".to_string(), 120_500.0));
        let svg = render_medians("compute", &rows);
        assert!(svg.contains("processes/2^20") && svg.contains("120 µs"), "{svg}");
        assert_eq!(svg.matches("<rect x=").count(), 3);
    }
}
