//! Where each mark of a [`Timeline`] goes, in character cells: one layout for the text
//! lanes of `--timeline` and for the book's SVG pictures (drawn in a monospace font on
//! the same grid), so the two show the same thing.

use super::timeline::{fmt_t, MarkKind, Panel, Timeline, LABEL_WIDTH};
use std::ops::Range;

/// One stretch of a section's columns that fits the width; a long section wraps into
/// several strips, each with its lanes' labels again.
#[derive(Clone, Debug)]
pub struct Strip {
    pub cols: Range<usize>,
    /// The cell (from the start of the lane area) of each column of `cols`.
    pub xs: Vec<usize>,
    /// Time labels: (cell, text).
    pub axis: Vec<(usize, String)>,
    pub rows: Vec<Row>,
}

/// One lane in one strip.
#[derive(Clone, Debug)]
pub struct Row {
    /// Index into the panel's lanes.
    pub lane: usize,
    pub label: String,
    pub segs: Vec<Seg>,
    /// (cell, index into the lane's marks).
    pub marks: Vec<(usize, usize)>,
}

/// A stretch of a lane's line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seg {
    pub x0: usize,
    pub x1: usize,
    pub kind: SegKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegKind {
    Alive,
    /// Exited, not yet reaped.
    Zombie,
    /// After its last mark, for a process the run never mentions again.
    Unseen,
}

/// The label of a lane: `4232 child`, or `4910 +31 child` for lanes drawn as one.
pub fn lane_label(pid: i32, role: &str, more: usize) -> String {
    let s = if more == 0 {
        format!("{pid} {role}")
    } else {
        format!("{pid} +{more} {role}")
    };
    s.chars().take(LABEL_WIDTH - 1).collect()
}

/// Lay `panel` out in strips of `area` cells: its columns spread as widely as fits in
/// one strip, or wrapped into several.
pub fn layout(panel: &Panel, area: usize) -> Vec<Strip> {
    let widest = (area / panel.times.len().max(1)).clamp(2, 12);
    (2..=widest)
        .rev()
        .map(|step| place(panel, area, step))
        .find(|s| s.len() == 1)
        .unwrap_or_else(|| place(panel, area, 2))
}

/// Columns at least `step` cells apart, and marks on one lane never overlapping.
fn place(panel: &Panel, area: usize, step: usize) -> Vec<Strip> {
    let n = panel.times.len();
    // The lanes marked in `col`, each with the width of its marks there (one space apart).
    let at = |col: usize| {
        panel.lanes.iter().enumerate().filter_map(move |(li, l)| {
            let w: Vec<usize> = l
                .marks
                .iter()
                .filter(|m| m.col == col)
                .map(|m| m.text.chars().count())
                .collect();
            (!w.is_empty()).then(|| (li, w.iter().sum::<usize>() + w.len() - 1))
        })
    };
    let mut bounds: Vec<(Range<usize>, Vec<usize>)> = Vec::new();
    let (mut start, mut xs) = (0, Vec::new());
    let mut cursor = vec![0usize; panel.lanes.len()];
    for col in 0..n {
        let place = |cursor: &[usize], xs: &[usize]| {
            let after = xs.last().map_or(0, |x| x + step);
            at(col).map(|(li, _)| cursor[li]).fold(after, usize::max)
        };
        let mut x = place(&cursor, &xs);
        let need = at(col).map(|(_, w)| x + w).max().unwrap_or(x);
        if need > area && col > start {
            bounds.push((start..col, std::mem::take(&mut xs)));
            start = col;
            cursor.iter_mut().for_each(|c| *c = 0);
            x = place(&cursor, &xs);
        }
        for (li, w) in at(col) {
            cursor[li] = x + w + 1;
        }
        xs.push(x);
    }
    if n == 0 || !xs.is_empty() {
        bounds.push((start..n, xs));
    }
    bounds.into_iter().map(|(cols, xs)| strip(panel, cols, xs, area)).collect()
}

fn strip(panel: &Panel, cols: Range<usize>, xs: Vec<usize>, area: usize) -> Strip {
    let x_of = |c: usize| xs[c - cols.start];
    let mut axis = Vec::new();
    let mut free = 0;
    for c in cols.clone() {
        let label = fmt_t(panel.times[c]);
        if x_of(c) >= free && x_of(c) + label.len() <= area {
            free = x_of(c) + label.len() + 2;
            axis.push((x_of(c), label));
        }
    }
    let mut rows = Vec::new();
    for (li, lane) in panel.lanes.iter().enumerate() {
        let first = lane.marks.first().map(|m| m.col);
        let end = lane
            .marks
            .iter()
            .find(|m| matches!(m.kind, MarkKind::Reaped | MarkKind::Gone))
            .map(|m| m.col);
        let born_in = if lane.before { None } else { first };
        let shown = born_in.is_none_or(|b| b < cols.end)
            && end.is_none_or(|e| e >= cols.start);
        if !shown {
            continue;
        }
        // Marks of one lane in one column follow each other.
        let mut marks: Vec<(usize, usize)> = Vec::new();
        let mut last: Option<(usize, usize)> = None;
        for (i, m) in
            lane.marks.iter().enumerate().filter(|(_, m)| cols.contains(&m.col))
        {
            let x = match last {
                Some((col, end)) if col == m.col => end + 1,
                _ => x_of(m.col),
            };
            last = Some((m.col, x + m.text.chars().count()));
            marks.push((x, i));
        }
        let x0 = born_in.filter(|b| cols.contains(b)).map_or(0, x_of);
        // Known to live on: to its end, or to the edge if it is seen again; else it
        // fades after its last mark.
        let last_col = lane.marks.last().map_or(0, |m| m.col);
        let known = match end {
            Some(e) if cols.contains(&e) => x_of(e),
            Some(_) => area,
            None if lane.after || last_col >= cols.end => area,
            None if last_col < cols.start => x0,
            None => last.map_or(x0, |l| l.1 + 1).min(area),
        };
        let zombie = lane
            .marks
            .iter()
            .find(|m| m.kind == MarkKind::State('Z'))
            .map(|m| m.col)
            .filter(|z| *z < cols.end)
            .map(|z| if cols.contains(&z) { x_of(z) } else { 0 })
            .or((lane.state_before == Some('Z')).then_some(0));
        let mut segs = Vec::new();
        match zombie {
            Some(z) if z <= known => {
                segs.push(Seg { x0, x1: z.max(x0), kind: SegKind::Alive });
                segs.push(Seg { x0: z.max(x0), x1: known, kind: SegKind::Zombie });
            }
            _ => segs.push(Seg { x0, x1: known, kind: SegKind::Alive }),
        }
        if end.is_none() {
            segs.push(Seg { x0: known, x1: area, kind: SegKind::Unseen });
        }
        segs.retain(|s| s.x1 > s.x0);
        let label = lane_label(lane.pid, &lane.role, lane.more.len());
        rows.push(Row { lane: li, label, segs, marks });
    }
    Strip { cols, xs, axis, rows }
}

/// What the marks mean, for the foot of a picture.
pub const LEGEND: &[&str] = &[
    "fork: forked   S R D T Z: its state in /proc   exec P: now runs P",
    "kill -SIG: a signal sent to it   ppid->N: re-parented to N",
    "reaped: E: waitpid returned E (exit code or killing signal)",
    "---- alive   .... a zombie (exited, not reaped yet)   faint: not seen again",
    "columns are in the order of the events, each labelled with its lab time",
];

impl Timeline {
    /// The timeline as text lanes, `width` characters wide (`--timeline`).
    pub fn ascii(&self, width: usize) -> String {
        let area = width.saturating_sub(LABEL_WIDTH).max(20);
        let mut out =
            format!("== timeline of {} (lab pid {}) ==\n", self.lab, self.lab_pid);
        for p in &self.panels {
            out += &format!("\n-- {} --\n", p.title);
            for s in layout(p, area) {
                if s.rows.is_empty() {
                    continue;
                }
                let mut axis = vec![' '; area];
                for (x, t) in &s.axis {
                    put(&mut axis, *x, t);
                }
                out += &format!("{:<w$}{}\n", "t", trim(&axis), w = LABEL_WIDTH);
                for r in &s.rows {
                    let mut cells = vec![' '; area];
                    for seg in &r.segs {
                        let c = match seg.kind {
                            SegKind::Alive => '-',
                            SegKind::Zombie => '.',
                            SegKind::Unseen => ' ',
                        };
                        cells[seg.x0..seg.x1.min(area)]
                            .iter_mut()
                            .for_each(|x| *x = c);
                    }
                    for &(x, i) in &r.marks {
                        put(&mut cells, x, &p.lanes[r.lane].marks[i].text);
                    }
                    out += &format!(
                        "{:<w$}{}\n",
                        r.label,
                        trim(&cells),
                        w = LABEL_WIDTH
                    );
                }
            }
            for t in &p.trees {
                out += &format!("  {}:\n", t.why);
                for r in &t.rows {
                    let pad = "  ".repeat(r.depth);
                    out +=
                        &format!("    {pad}{} {:<1} {}\n", r.pid, r.state, r.cmd);
                }
            }
            for sh in &p.shares {
                out += &format!("  {}:\n", sh.what);
                let most = sh.rows.iter().map(|r| r.1).max().unwrap_or(1).max(1);
                let bar = area.saturating_sub(12) as u64;
                for (pid, n) in &sh.rows {
                    let len = (n * bar).div_ceil(most) as usize;
                    out += &format!("    {pid:>7} {} {n}\n", "#".repeat(len));
                }
            }
        }
        if !self.quiet.is_empty() {
            let q =
                format!("no single process drawn in: {}", self.quiet.join("; "));
            out += "\n";
            for line in wrap(&q, width) {
                out += &format!("{line}\n");
            }
        }
        out += "\n";
        for l in LEGEND {
            out += &format!("  {l}\n");
        }
        out
    }
}

/// `s` cut into lines of at most `width` characters, between words.
pub fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut out = vec![String::new()];
    for w in s.split(' ') {
        let cur = out.last_mut().expect("one line");
        if !cur.is_empty() && cur.chars().count() + 1 + w.chars().count() > width {
            out.push(w.to_string());
        } else {
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(w);
        }
    }
    out
}

fn put(cells: &mut [char], x: usize, text: &str) {
    for (i, ch) in text.chars().enumerate() {
        if let Some(c) = cells.get_mut(x + i) {
            *c = ch;
        }
    }
}

fn trim(cells: &[char]) -> String {
    cells.iter().collect::<String>().trim_end().to_string()
}
