//! Part 2: many chatters write long lines as fast as they can, to stdout and stderr; the
//! manager relays them. The lab reads the manager's output, as a terminal would get it,
//! and rebuilds every line: each must arrive whole, with the right name, in order.

use crate::events::Event;
use crate::events::Line;
use crate::programs::chatter_line;
use crate::run::{self, Spec};
use crate::{Args, Ctx};
use proclab::{check, observe, Deadline, Lab};
use std::collections::HashMap;
use std::time::Duration;

/// Lines each chatter writes.
pub const LINES: u32 = 100;

#[derive(Default, serde::Serialize)]
pub struct Tally {
    lines: usize,
    whole: usize,
    torn: usize,
    misnamed: usize,
    out_of_order: usize,
    /// Consecutive lines from two different processes: the streams did interleave.
    switches: usize,
}

pub fn run(lab: &mut Lab, args: &Args, ctx: &Ctx) {
    lab.section("2. Output streams: whole lines, each with its name");
    let (n, bytes) = (args.chatters, args.line_bytes as usize);
    let formation = format!("chatter={n}");
    let env = vec![
        ("CHATTER_LINES", LINES.to_string()),
        ("CHATTER_BYTES", bytes.to_string()),
    ];
    let spec = Spec {
        env,
        show: 4,
        ..Spec::new(&formation, "on-failure", ctx.port, args.grace_ms)
    };
    let mut m = run::start(&spec, &ctx.files, &ctx.lifeline, lab.json());
    let (mut t, mut next) =
        (Tally::default(), HashMap::<(String, bool), u32>::new());
    let mut last = String::new();
    let d = Deadline::after(Duration::from_secs(30));
    // ANCHOR: judge
    while let Some(line) = m.next(d) {
        let (name, err, text) = match line {
            Line::Process { name, err, text } => (name, err, text),
            Line::System(Event::Exiting { .. }) => break,
            Line::System(_) => continue,
            Line::Other => {
                t.torn += 1; // not even a line of the manager's shape
                continue;
            }
        };
        t.lines += 1;
        t.switches += usize::from(!last.is_empty() && last != name);
        let mut words = text.splitn(3, ' ');
        let (who, seq) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let seq: u32 = seq.parse().unwrap_or(u32::MAX);
        let want = chatter_line(who, seq, bytes);
        let whole = text.as_bytes() == &want[..want.len() - 1]; // as it was written
        let named = who == name && (seq % 10 == 9) == err; // stderr: every tenth
        let prev = next.insert((name.clone(), err), seq).map_or(-1, i64::from);
        t.whole += usize::from(whole && named);
        t.torn += usize::from(!whole);
        t.misnamed += usize::from(whole && !named);
        t.out_of_order += usize::from(whole && i64::from(seq) <= prev);
        last = name;
    }
    // ANCHOR_END: judge
    let end = m.wait_exit(Duration::from_secs(5));
    let want = (n * LINES) as usize;
    let status = end.map_or("still running".into(), |s| s.to_string());
    let mb = (want * bytes) as f64 / 1e6;
    observe!(
        lab,
        "streams",
        "{n} chatters, {want} lines of {bytes} bytes ({mb:.1} MB): {whole} whole, {torn} \
         torn, {misnamed} misattributed, {out_of_order} out of order; the streams \
         switched {switches} times; the manager {status}",
        lines = t.lines,
        whole = t.whole,
        torn = t.torn,
        misnamed = t.misnamed,
        out_of_order = t.out_of_order,
        switches = t.switches
    );
    check!(
        lab,
        "lines_whole",
        t.whole == want && t.lines == want && t.out_of_order == 0 && (t.switches > 0 || n == 1),
        "all {want} lines arrived whole, in order, each named after the process that \
         wrote it ({n} processes writing {bytes}-byte lines at once)"
    );
}
