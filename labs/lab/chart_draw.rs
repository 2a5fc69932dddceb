//! The drawing of `lab charts` (`charts.rs`): horizontal bars in blocks on one scale,
//! times on a log scale over whole decades, bandwidths on a linear one; 750 px wide
//! with 13 px text, the width of the book's page. Deterministic.

use std::fmt::Write;

/// A duration, short: `408 ns`, `11.4 µs`, `1.13 ms`.
pub fn fmt_ns(ns: f64) -> String {
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
const LABEL: f64 = 34.0 * CW;
const FONT: &str = "font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\"";

/// Where a figure goes on the bar axis, and the labels of the scale: a log scale over
/// whole decades for times, a linear one from 0 for bandwidths.
pub struct Scale {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Scale {
    pub fn of(values: &[f64], bandwidth: bool) -> Scale {
        let (lo, hi) = values
            .iter()
            .fold((f64::MAX, 0.0f64), |(l, h), &v| (l.min(v), h.max(v)));
        if bandwidth {
            return Scale {
                lo: 0.0,
                hi: (hi / 5.0).ceil().max(1.0) * 5.0,
                log: false,
            };
        }
        let (lo, hi) = (lo.max(1.0).log10().floor(), hi.max(10.0).log10().ceil());
        Scale { lo, hi: hi.max(lo + 1.0), log: true }
    }
    /// 0 to 1 along the axis.
    fn at(&self, v: f64) -> f64 {
        let v = if self.log { v.max(1.0).log10() } else { v };
        ((v - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
    }
    fn ticks(&self) -> Vec<(f64, String)> {
        if self.log {
            let label = |d: i32| {
                fmt_ns(10f64.powi(d)).replace(".00 ", " ").replace(".0 ", " ")
            };
            (self.lo as i32..=self.hi as i32)
                .map(|d| (10f64.powi(d), label(d)))
                .collect()
        } else {
            let step = self.hi / 5.0;
            (0..=5)
                .map(|i| (step * i as f64, format!("{:.0} GiB/s", step * i as f64)))
                .collect()
        }
    }
}

/// One bar: its label (in its colour), its figure, its colour.
pub struct Row {
    pub label: String,
    pub v: f64,
    pub colour: &'static str,
}

pub const BLUE: &str = "#4a6fa5";
pub const ORANGE: &str = "#c25e00";

/// `text` in lines of at most `width` characters, broken between words.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(l) if l.chars().count() + 1 + word.chars().count() <= width => {
                l.push(' ');
                l.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// Bars in blocks (a small gap between blocks) on one scale, with a title, a line on
/// what one iteration is, and a legend under the scale. Deterministic.
pub fn draw(
    title: &str,
    what: &str,
    blocks: &[Vec<Row>],
    scale: &Scale,
    note: &str,
) -> String {
    let bandwidth = !scale.log;
    let (x0, x1) = (LABEL + 12.0, W - 96.0);
    let x = |v: f64| x0 + scale.at(v) * (x1 - x0);
    let mut s = String::new();
    let mut y = 24.0;
    let _ = writeln!(s, "<text x=\"8\" y=\"{y}\" font-size=\"15\" font-weight=\"bold\">{title}</text>");
    y += 20.0;
    for line in wrap(what, 92) {
        let _ = writeln!(
            s,
            "<text x=\"8\" y=\"{y}\" font-size=\"13\" fill=\"#444\">{line}</text>"
        );
        y += 18.0;
    }
    let top = y;
    for block in blocks {
        for r in block {
            let (w, ty) = ((x(r.v) - x0).max(2.0), y + 12.0);
            let shown =
                if bandwidth { format!("{:.2} GiB/s", r.v) } else { fmt_ns(r.v) };
            let (label, colour): (String, _) =
                (r.label.chars().take(33).collect(), r.colour);
            let _ = writeln!(
                s,
                "<text x=\"8\" y=\"{ty:.1}\" font-size=\"13\" fill=\"{colour}\">{label}</text>\n\
                 <rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"15\" fill=\"{colour}\"/>\n\
                 <text x=\"{:.1}\" y=\"{ty:.1}\" font-size=\"13\">{shown}</text>",
                x0 + w + 6.0
            );
            y += 19.0;
        }
        y += 9.0;
    }
    // The scale, under the bars.
    let mut grid = String::new();
    for (v, label) in scale.ticks() {
        let (tx, ty) = (x(v), y + 16.0);
        let _ = writeln!(
            grid,
            "<line x1=\"{tx:.1}\" y1=\"{top:.1}\" x2=\"{tx:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\n\
             <text x=\"{tx:.1}\" y=\"{ty:.1}\" font-size=\"12\" fill=\"#555\" \
             text-anchor=\"middle\">{label}</text>"
        );
    }
    y += 34.0;
    let _ = writeln!(
        s,
        "<text x=\"8\" y=\"{y:.1}\" font-size=\"13\" fill=\"#444\">{note}</text>"
    );
    let h = y + 12.0;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{h:.0}\" \
         viewBox=\"0 0 {W} {h:.0}\" {FONT}>\n<rect width=\"100%\" height=\"100%\" \
         fill=\"#fff\"/>\n{grid}{s}</svg>\n"
    )
}
