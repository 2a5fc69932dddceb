//! `lab charts`: one chart per benchmark group, drawn from the figures `lab benchmarks`
//! recorded (`book/src/measured/bench-GROUP.txt`): each bench's median as a bar, the C
//! reference's beside it with the ratio, on a log scale (a group spans 400 ns to 1 ms),
//! 750 px wide with 13 px text, the width of the book's page. Written to
//! `book/src/measured/chart-GROUP.svg`; criterion's own report stays in target/criterion.

use std::fmt::Write;
use std::path::Path;

/// One bench of a group, as recorded: its median and, if the C reference does the same
/// work, the C median and the ratio `lab benchmarks` computed.
#[derive(Debug, PartialEq)]
pub struct Bar {
    pub name: String,
    pub ns: f64,
    pub c: Option<(f64, String)>,
}

/// `932.5 µs` -> 932500.0 (ns).
fn to_ns(value: &str, unit: &str) -> Option<f64> {
    let v: f64 = value.parse().ok()?;
    let scale = match unit.trim_end_matches(',') {
        "ns" => 1.0,
        "µs" | "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => return None,
    };
    Some(v * scale)
}

/// The bars of a recorded `bench-GROUP.txt`: rows `group/name  median unit  [throughput]
/// [C median unit, Rust/C = ratio]`.
pub fn parse(text: &str) -> Vec<Bar> {
    let mut bars = Vec::new();
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() < 3 || !t[0].contains('/') || line.starts_with(['$', '#']) {
            continue;
        }
        let Some(ns) = to_ns(t[1], t[2]) else { continue };
        let c = line.split_once(", Rust/C = ").and_then(|(before, ratio)| {
            let b: Vec<&str> = before.split_whitespace().collect();
            let ns = to_ns(b.get(b.len().checked_sub(2)?)?, b.last()?)?;
            Some((ns, ratio.trim().to_string()))
        });
        let name = t[0].split_once('/').map_or(t[0], |(_, n)| n).to_string();
        bars.push(Bar { name, ns, c });
    }
    bars
}

/// A duration, short: `408 ns`, `11.4 µs`, `1.13 ms`.
fn fmt_ns(ns: f64) -> String {
    let (v, unit) = match ns {
        n if n < 1e3 => (n, "ns"),
        n if n < 1e6 => (n / 1e3, "µs"),
        n if n < 1e9 => (n / 1e6, "ms"),
        n => (n / 1e9, "s"),
    };
    if v < 10.0 {
        format!("{v:.2} {unit}")
    } else if v < 100.0 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.0} {unit}")
    }
}

const W: f64 = 750.0;
const CW: f64 = 7.83;
const LABEL: f64 = 30.0 * CW;
const FONT: &str = "font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\"";

/// The chart of `group`'s bars. Deterministic.
pub fn render(group: &str, bars: &[Bar]) -> String {
    let all = bars
        .iter()
        .flat_map(|b| std::iter::once(b.ns).chain(b.c.as_ref().map(|c| c.0)));
    let (lo, hi) = all.fold((f64::MAX, 0.0f64), |(l, h), v| (l.min(v), h.max(v)));
    // Whole decades around the figures, so the scale reads 100 ns, 1 µs, 10 µs...
    let (d0, d1) = (lo.max(1.0).log10().floor(), hi.max(10.0).log10().ceil());
    let (x0, x1) = (LABEL + 12.0, W - 80.0);
    let x =
        |ns: f64| x0 + (ns.max(1.0).log10() - d0) / (d1 - d0).max(1.0) * (x1 - x0);
    let mut s = String::new();
    let mut y = 24.0;
    let title = format!("{group}: median per operation, Rust and the C reference");
    let _ = writeln!(s, "<text x=\"8\" y=\"{y}\" font-size=\"15\" font-weight=\"bold\">{title}</text>");
    y += 26.0;
    let top = y;
    for b in bars {
        let name: String = b.name.chars().take(29).collect();
        let c =
            b.c.as_ref()
                .map(|(ns, r)| (*ns, "#c25e00", format!("  C: Rust/C = {r}")));
        for (ns, colour, label) in
            [Some((b.ns, "#4a6fa5", name)), c].into_iter().flatten()
        {
            let (w, ty, value) = ((x(ns) - x0).max(2.0), y + 12.0, fmt_ns(ns));
            let _ = writeln!(
                s,
                "<text x=\"8\" y=\"{ty:.1}\" font-size=\"13\" fill=\"{colour}\">{label}</text>\n\
                 <rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"15\" fill=\"{colour}\"/>\n\
                 <text x=\"{:.1}\" y=\"{ty:.1}\" font-size=\"13\">{value}</text>",
                x0 + w + 6.0
            );
            y += 19.0;
        }
        y += 9.0;
    }
    // The scale, under the bars: a line and a label at each decade.
    let mut grid = String::new();
    for d in (d0 as i32)..=(d1 as i32) {
        let label = fmt_ns(10f64.powi(d)).replace(".00 ", " ").replace(".0 ", " ");
        let (tx, ty) = (x(10f64.powi(d)), y + 16.0);
        let _ = writeln!(
            grid,
            "<line x1=\"{tx:.1}\" y1=\"{top:.1}\" x2=\"{tx:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>"
        );
        let _ = writeln!(
            grid,
            "<text x=\"{tx:.1}\" y=\"{ty:.1}\" font-size=\"12\" fill=\"#555\" \
             text-anchor=\"middle\">{label}</text>"
        );
    }
    y += 30.0;
    let note =
        "bars on a log scale; blue: this Rust bench, orange: the same work in C";
    let _ = writeln!(
        s,
        "<text x=\"8\" y=\"{y:.1}\" font-size=\"13\" fill=\"#444\">{note}</text>"
    );
    let h = y + 12.0;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{h:.0}\" viewBox=\"0 0 {W} {h:.0}\" \
         {FONT}>\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n{grid}{s}</svg>\n"
    )
}

/// `lab charts`: a chart for every recorded `bench-GROUP.txt` (or the groups named).
pub fn charts(groups: &[String]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/measured");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    for f in entries {
        let Some(group) =
            f.strip_prefix("bench-").and_then(|g| g.strip_suffix(".txt"))
        else {
            continue;
        };
        if !groups.is_empty() && !groups.iter().any(|g| g == group) {
            continue;
        }
        let bars =
            parse(&std::fs::read_to_string(dir.join(&f)).unwrap_or_default());
        if bars.is_empty() {
            eprintln!("{f}: no bench figures, no chart");
            continue;
        }
        let out = dir.join(format!("chart-{group}.svg"));
        std::fs::write(&out, render(group, &bars)).expect("write the chart");
        eprintln!("{f} -> {}", out.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_table_reads_as_bars() {
        let text = "$ cargo bench -- '^spawn/'\n# recorded by `lab benchmarks`\n\
            bench    median     throughput   C reference (refbench.c)\n\
            spawn/command_status      932.5 µs\n\
            spawn/fork_exit_wait      298.3 µs         208.6 µs, Rust/C = 1.43\n\
            pool/rayon/tiny           35.3 µs      28.31 M/s\n";
        let bars = parse(text);
        assert_eq!(bars.len(), 3);
        assert_eq!(
            bars[0],
            Bar { name: "command_status".into(), ns: 932_500.0, c: None }
        );
        assert_eq!(bars[1].c, Some((208_600.0, "1.43".into())));
        assert_eq!(bars[2].name, "rayon/tiny");
        let svg = render("spawn", &bars);
        assert!(svg.contains("C: Rust/C = 1.43") && svg.contains("298 µs"));
    }
}
