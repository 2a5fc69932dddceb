//! The book's picture of a run: the [`Timeline`] of its events as an SVG, on the grid of
//! `--timeline` (`proclab::report::lanes`), in a 13 px monospace font, 750 px wide: the
//! width of mdBook's page, so text is shown at its size.

use proclab::report::lanes::{layout, wrap, SegKind, Strip, LEGEND};
use proclab::report::timeline::{MarkKind, Panel, Timeline, LABEL_WIDTH};
use std::fmt::Write;

/// The picture's width in cells of the monospace font, and the cell in px.
pub const CELLS: usize = 94;
const CW: f64 = 7.83;
const WIDTH: f64 = 750.0;
const LEFT: f64 = (WIDTH - CELLS as f64 * CW) / 2.0;
const ROW: f64 = 22.0;
const FONT: &str = "font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\"";

/// Text for an SVG text element: escaped, with its runs of spaces kept (as no-break
/// spaces: a browser showing the SVG as an image collapses plain ones).
fn esc(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let run = i > 0 && chars[i - 1] == ' ' || chars.get(i + 1) == Some(&' ');
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            ' ' if run => out.push('\u{a0}'),
            c => out.push(c),
        }
    }
    out
}

/// x in px of cell `c` of the whole width.
fn px(c: f64) -> f64 {
    LEFT + c * CW
}

fn colour(kind: &MarkKind) -> (&'static str, &'static str) {
    match kind {
        MarkKind::Fork => ("#1f5fbf", "normal"),
        MarkKind::State('Z') => ("#b3261e", "bold"),
        MarkKind::State(_) => ("#555555", "normal"),
        MarkKind::Exec => ("#2e7d32", "bold"),
        MarkKind::Signal => ("#c25e00", "bold"),
        MarkKind::Reparent => ("#7b3fa0", "bold"),
        MarkKind::Reaped => ("#1b1b1b", "bold"),
        MarkKind::Gone | MarkKind::Seen => ("#555555", "normal"),
    }
}

struct Out {
    s: String,
    y: f64,
}

impl Out {
    fn text(&mut self, x: f64, y: f64, size: u32, attrs: &str, t: &str) {
        let _ = writeln!(
            self.s,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"{size}\" {attrs}>{}</text>",
            esc(t)
        );
    }
    fn rect(&mut self, (x, y): (f64, f64), (w, h): (f64, f64), attrs: &str) {
        let size = format!("width=\"{w:.1}\" height=\"{h:.1}\"");
        let _ =
            writeln!(self.s, "<rect x=\"{x:.1}\" y=\"{y:.1}\" {size} {attrs}/>");
    }
    fn line(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, attrs: &str) {
        let _ = writeln!(
            self.s,
            "<line x1=\"{x0:.1}\" y1=\"{y0:.1}\" x2=\"{x1:.1}\" y2=\"{y1:.1}\" {attrs}/>"
        );
    }
}

/// The SVG of `t`. Deterministic: the same events give the same bytes.
pub fn render(t: &Timeline) -> String {
    let mut o = Out { s: String::new(), y: 24.0 };
    let title = format!(
        "{}: what happened, process by process (lab pid {})",
        t.lab, t.lab_pid
    );
    o.text(LEFT, o.y, 15, "font-weight=\"bold\"", &title);
    o.y += 10.0;
    let area = CELLS - LABEL_WIDTH;
    for p in &t.panels {
        o.y += 26.0;
        let head: String = p.title.chars().take(CELLS - 2).collect();
        o.text(LEFT, o.y, 14, "font-weight=\"bold\" fill=\"#222\"", &head);
        o.y += 8.0;
        for s in layout(p, area) {
            if !s.rows.is_empty() {
                strip(&mut o, p, &s);
            }
        }
        trees(&mut o, p);
        shares(&mut o, p);
    }
    if !t.quiet.is_empty() {
        o.y += 24.0;
        let q = format!("no single process drawn in: {}", t.quiet.join("; "));
        for line in wrap(&q, CELLS) {
            o.text(LEFT, o.y, 13, "fill=\"#555\"", &line);
            o.y += 18.0;
        }
    }
    o.y += 22.0;
    for l in LEGEND {
        o.text(LEFT, o.y, 13, "fill=\"#444\"", l);
        o.y += 18.0;
    }
    let h = o.y + 6.0;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{h:.0}\" \
         viewBox=\"0 0 {WIDTH} {h:.0}\" {FONT} xml:space=\"preserve\" style=\"white-space: pre\">\n<rect width=\"100%\" height=\"100%\" \
         fill=\"#ffffff\"/>\n{}</svg>\n",
        o.s
    )
}

fn strip(o: &mut Out, p: &Panel, s: &Strip) {
    let lx = |x: usize| px((LABEL_WIDTH + x) as f64);
    o.y += 18.0;
    o.text(LEFT, o.y, 12, "fill=\"#777\"", "lab time");
    let top = o.y + 6.0;
    let bottom = top + ROW * s.rows.len() as f64;
    for (x, label) in &s.axis {
        o.text(lx(*x), o.y, 12, "fill=\"#777\"", label);
        o.line(
            lx(*x),
            top,
            lx(*x),
            bottom,
            "stroke=\"#e4e4e4\" stroke-width=\"1\"",
        );
    }
    let mid = |i: usize| top + ROW * i as f64 + ROW / 2.0;
    let row_of = |pid: i32| s.rows.iter().position(|r| p.lanes[r.lane].pid == pid);
    // Lines first, then what joins two lanes, then the marks' text over both.
    for (i, r) in s.rows.iter().enumerate() {
        let lane = &p.lanes[r.lane];
        let bold = if lane.role == "lab" { " font-weight=\"bold\"" } else { "" };
        let attrs = format!("fill=\"#222\" data-pid=\"{}\"{bold}", lane.pid);
        o.text(LEFT, mid(i) + 4.5, 13, &attrs, &r.label);
        for seg in &r.segs {
            let style = match seg.kind {
                SegKind::Zombie => {
                    "stroke=\"#b3261e\" stroke-width=\"2\" stroke-dasharray=\"2 3\""
                }
                SegKind::Alive => "stroke=\"#8fa8c8\" stroke-width=\"3\"",
                SegKind::Unseen => {
                    "stroke=\"#d5dde8\" stroke-width=\"1\" stroke-dasharray=\"1 4\""
                }
            };
            o.line(lx(seg.x0), mid(i), lx(seg.x1), mid(i), style);
        }
    }
    for (i, r) in s.rows.iter().enumerate() {
        for &(x, mi) in &r.marks {
            let m = &p.lanes[r.lane].marks[mi];
            let Some(j) = m.from.and_then(row_of).filter(|&j| j != i) else {
                continue;
            };
            let (c, _) = colour(&m.kind);
            let (from, to) = match m.kind {
                MarkKind::Reaped | MarkKind::Gone => (mid(i), mid(j)),
                _ => (mid(j), mid(i)),
            };
            let cx = lx(x) + 3.0;
            let dash = if m.kind == MarkKind::Reaped {
                " stroke-dasharray=\"4 2\""
            } else {
                ""
            };
            o.line(
                cx,
                from,
                cx,
                to,
                &format!("stroke=\"{c}\" stroke-width=\"1.5\"{dash}"),
            );
            // An arrowhead just short of the text on the lane it points at.
            let (tip, d) =
                if to > from { (to - 8.0, -6.0) } else { (to + 8.0, 6.0) };
            let _ = writeln!(
                o.s,
                "<path d=\"M{cx:.1} {tip:.1} l-3.5 {d:.1} l7 0 z\" fill=\"{c}\"/>"
            );
        }
    }
    for (i, r) in s.rows.iter().enumerate() {
        for &(x, mi) in &r.marks {
            let m = &p.lanes[r.lane].marks[mi];
            if m.text.is_empty() {
                continue;
            }
            let w = m.text.chars().count() as f64 * CW;
            o.rect(
                (lx(x) - 1.0, mid(i) - 8.0),
                (w + 2.0, 16.0),
                "fill=\"#ffffff\"",
            );
            let (c, weight) = colour(&m.kind);
            let attrs = format!("fill=\"{c}\" font-weight=\"{weight}\"");
            o.text(lx(x), mid(i) + 4.5, 13, &attrs, &m.text);
        }
    }
    o.y = bottom + 4.0;
}

fn trees(o: &mut Out, p: &Panel) {
    if p.trees.is_empty() {
        return;
    }
    o.y += 16.0;
    let (mut x, mut row_h, top) = (0usize, 0.0f64, o.y);
    let mut y0 = top;
    for t in &p.trees {
        let lines: Vec<(String, bool)> = t
            .rows
            .iter()
            .take(9)
            .map(|r| {
                let indent = if r.depth == 0 {
                    String::new()
                } else {
                    "  ".repeat(r.depth - 1) + "└ "
                };
                let cmd: String = r.cmd.chars().take(26).collect();
                (format!("{indent}{} {} {cmd}", r.pid, r.state), r.state == "Z")
            })
            .collect();
        let w = lines
            .iter()
            .map(|l| l.0.chars().count())
            .chain([t.why.chars().count()])
            .max()
            .unwrap_or(0)
            + 2;
        if x > 0 && x + w > CELLS {
            x = 0;
            y0 += row_h + 10.0;
            row_h = 0.0;
        }
        let h = 22.0 + 18.0 * lines.len() as f64;
        let box_style = "rx=\"4\" fill=\"#f6f8fa\" stroke=\"#d0d7de\"";
        o.rect((px(x as f64), y0), (w as f64 * CW, h), box_style);
        o.text(px(x as f64 + 1.0), y0 + 16.0, 12, "fill=\"#555\"", &t.why);
        for (k, (l, z)) in lines.iter().enumerate() {
            let fill = if *z { "fill=\"#b3261e\"" } else { "fill=\"#222\"" };
            o.text(px(x as f64 + 1.0), y0 + 34.0 + 18.0 * k as f64, 13, fill, l);
        }
        x += w + 2;
        row_h = row_h.max(h);
    }
    o.y = y0 + row_h;
}

fn shares(o: &mut Out, p: &Panel) {
    for sh in &p.shares {
        o.y += 24.0;
        o.text(LEFT, o.y, 13, "fill=\"#222\" font-weight=\"bold\"", &sh.what);
        let most = sh.rows.iter().map(|r| r.1).max().unwrap_or(1).max(1) as f64;
        let bar = (CELLS - LABEL_WIDTH - 8) as f64 * CW;
        for (pid, n) in &sh.rows {
            o.y += 20.0;
            o.text(
                LEFT,
                o.y,
                13,
                &format!("fill=\"#222\" data-pid=\"{pid}\""),
                &pid.to_string(),
            );
            let w = (*n as f64 / most * bar).max(1.0);
            let x0 = px(LABEL_WIDTH as f64);
            o.rect((x0, o.y - 11.0), (w, 13.0), "fill=\"#8fa8c8\"");
            o.text(x0 + w + 6.0, o.y, 13, "fill=\"#222\"", &n.to_string());
        }
        o.y += 8.0;
    }
}
