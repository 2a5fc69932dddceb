//! The tables of a run: figures and per-round ratios, then the measured reasons (page
//! faults, waits, preemptions, system calls, process sizes) beside each ratio.

use crate::common::rounds::BLOCK;
use crate::cref::CRef;
use crate::why::Calls;
use crate::{Pair, Sample, Side};
use proclab::measure::fmt_duration;
use std::fmt::Write;
use std::time::Duration;

/// How far from 1.00 a ratio of the same work may be before it needs a reason.
const BAND: f64 = 0.05;

pub struct PairResult {
    pub pair: &'static Pair,
    /// Timed iterations per round on this run.
    pub iters: usize,
    pub rust: Vec<Sample>,
    pub c: Vec<Sample>,
    pub own: Vec<Sample>,
    pub calls_rust: Option<Calls>,
    pub calls_c: Option<Calls>,
}

impl PairResult {
    pub fn new(pair: &'static Pair, iters: usize) -> PairResult {
        PairResult {
            pair,
            iters,
            rust: Vec::new(),
            c: Vec::new(),
            own: Vec::new(),
            calls_rust: None,
            calls_c: None,
        }
    }
    pub fn push(&mut self, side: Side, s: Sample) {
        match side {
            Side::Rust => self.rust.push(s),
            Side::C => self.c.push(s),
            Side::Own => self.own.push(s),
        }
    }
}

/// Median, quartiles and extremes of a set of values.
#[derive(Clone, Copy, Debug)]
pub struct Spread {
    pub med: f64,
    pub q1: f64,
    pub q3: f64,
    pub min: f64,
    pub max: f64,
}

pub fn spread(mut v: Vec<f64>) -> Option<Spread> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    Some(Spread {
        med: q(0.5),
        q1: q(0.25),
        q3: q(0.75),
        min: v[0],
        max: v[v.len() - 1],
    })
}

fn med(v: &[Sample], f: impl Fn(&Sample) -> f64) -> Option<f64> {
    spread(v.iter().map(f).collect()).map(|s| s.med)
}

/// Per-round time ratios a/b: the rounds are paired by index (the same minute).
fn ratios(a: &[Sample], b: &[Sample]) -> Option<Spread> {
    spread(a.iter().zip(b).map(|(x, y)| x.ns as f64 / y.ns as f64).collect())
}

fn time(ns: Option<f64>) -> String {
    ns.map(|n| fmt_duration(Duration::from_nanos(n.round() as u64)))
        .unwrap_or_default()
}

fn gib_s(ns: Option<f64>) -> String {
    ns.map(|n| format!("{:.2}", BLOCK as f64 / n * 1e9 / (1u64 << 30) as f64))
        .unwrap_or_default()
}

fn ratio(s: Option<Spread>) -> [String; 3] {
    match s {
        Some(s) => [
            format!("{:.2}", s.med),
            format!("{:.2}–{:.2}", s.q1, s.q3),
            format!("{:.2}–{:.2}", s.min, s.max),
        ],
        None => Default::default(),
    }
}

/// Within `tol` of each other (absolute, or relative to the larger).
fn close(a: f64, b: f64, abs: f64, rel: f64) -> bool {
    (a - b).abs() <= abs.max(rel * a.abs().max(b.abs()))
}

/// The size of CPU 0's highest-level cache, as sysfs gives it (`32768K`).
fn last_level_cache() -> String {
    let dir = "/sys/devices/system/cpu/cpu0/cache";
    let read =
        |p: String| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    (0..8)
        .filter_map(|i| {
            let level: u32 = read(format!("{dir}/index{i}/level"))?.parse().ok()?;
            Some((level, read(format!("{dir}/index{i}/size"))?))
        })
        .max_by_key(|(level, _)| *level)
        .map(|(level, size)| format!("L{level}, {size}"))
        .unwrap_or_else(|| "unknown (no sysfs cache information)".into())
}

pub struct Report<'a> {
    pub results: &'a [PairResult],
    pub rounds: usize,
    pub c: Option<&'a CRef>,
}

impl Report<'_> {
    fn group<'g>(
        &'g self,
        g: &'g str,
    ) -> impl Iterator<Item = &'g PairResult> + 'g {
        self.results.iter().filter(move |r| r.pair.group == g)
    }

    fn memcpy_ns(&self, wset_name: &str) -> Option<f64> {
        let r = self
            .results
            .iter()
            .find(|r| r.pair.name == format!("memcpy_{wset_name}"))?;
        med(&r.rust, |s| s.ns as f64)
    }

    pub fn intro(&self) -> String {
        let who = match self.c {
            Some(_) => "Rust (benches/common/rounds.rs) against C (benches/c/refbench.c, built \
                        with `cc -O2`\nand loaded into the same process), the same work in \
                        alternating rounds.",
            None => "Rust (benches/common/rounds.rs) alone: the C reference was NOT BUILT on \
                     this run\n(no C compiler), so the C columns are empty.",
        };
        format!(
            "{who}\n\
             {} rounds per pair; in each, Rust, C and C as its own process (\"C own\") run N\n\
             iterations in a rotating order. A round's figure is the median of its iterations,\n\
             each timed alone; a figure below is the median over the rounds. Rust/C is the\n\
             median of the per-round time ratios, then their q1–q3 and min–max: above 1.00,\n\
             Rust took longer. Rust/own compares with the C program in its own, smaller process.\n",
            self.rounds
        )
    }

    fn time_table(&self, g: &str, title: &str) -> String {
        if self.group(g).next().is_none() {
            return String::new();
        }
        let mut t = format!(
            "\n{title}\n{:<34} {:>5} {:>9} {:>9} {:>6} {:>10} {:>10} {:>9} {:>8}\n",
            "pair",
            "N",
            "Rust",
            "C",
            "Rust/C",
            "q1–q3",
            "min–max",
            "C own",
            "Rust/own"
        );
        for r in self.group(g) {
            let [m, iqr, range] = ratio(ratios(&r.rust, &r.c));
            let own = ratios(&r.rust, &r.own).map(|s| format!("{:.2}", s.med));
            let line = format!(
                "{:<34} {:>5} {:>9} {:>9} {:>6} {:>10} {:>10} {:>9} {:>8}",
                r.pair.name,
                r.iters,
                time(med(&r.rust, |s| s.ns as f64)),
                time(med(&r.c, |s| s.ns as f64)),
                m,
                iqr,
                range,
                time(med(&r.own, |s| s.ns as f64)),
                own.unwrap_or_default()
            );
            t += line.trim_end();
            t += "\n";
        }
        t
    }

    fn bandwidth_table(&self) -> String {
        if self.group("bandwidth").next().is_none() {
            return String::new();
        }
        let mut t = format!(
            "\nbandwidth: GiB/s of the median iteration (1 MiB moved in 64 KiB steps through\n\
             working sets of the size named: 64KiB stays in cache, 64MiB does not).\n\
             ÷memcpy = Rust's time / Rust's memcpy time at the same size (higher is slower).\n\
             {:<36} {:>4} {:>6} {:>6} {:>6} {:>10} {:>10} {:>7} {:>6} {:>8}\n",
            "pair", "N", "Rust", "C", "Rust/C", "q1–q3", "min–max", "÷memcpy", "C own", "Rust/own"
        );
        for r in self.group("bandwidth") {
            let [m, iqr, range] = ratio(ratios(&r.rust, &r.c));
            let rust = med(&r.rust, |s| s.ns as f64);
            let size =
                if r.pair.name.contains("_64KiB") { "64KiB" } else { "64MiB" };
            let of_memcpy = match (rust, self.memcpy_ns(size)) {
                (Some(a), Some(b)) => format!("{:.2}", a / b),
                _ => String::new(),
            };
            let own = ratios(&r.rust, &r.own).map(|s| format!("{:.2}", s.med));
            let line = format!(
                "{:<36} {:>4} {:>6} {:>6} {:>6} {:>10} {:>10} {:>7} {:>6} {:>8}",
                r.pair.name,
                r.iters,
                gib_s(rust),
                gib_s(med(&r.c, |s| s.ns as f64)),
                m,
                iqr,
                range,
                of_memcpy,
                gib_s(med(&r.own, |s| s.ns as f64)),
                own.unwrap_or_default()
            );
            t += line.trim_end();
            t += "\n";
        }
        t
    }

    /// System calls that differ per iteration (Rust minus C), None when not counted:
    /// (calls of more or other work, calls whose number follows the timing). A wait on
    /// the ring or a futex yields or sleeps as often as the other side makes it wait, and
    /// a reader gets the same bytes in fewer or more pieces depending on when it runs.
    fn call_diffs(r: &PairResult) -> Option<(Vec<String>, Vec<String>)> {
        let (a, b) = (r.calls_rust.as_ref()?, r.calls_c.as_ref()?);
        let timing = |call: &str| {
            matches!(call, "sched_yield" | "futex" | "poll")
                || (r.pair.group == "bandwidth"
                    && matches!(call, "read" | "write" | "splice" | "vmsplice"))
        };
        let (mut work, mut waits) = (Vec::new(), Vec::new());
        for call in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
            let (x, y) = (
                a.get(call).copied().unwrap_or(0.0),
                b.get(call).copied().unwrap_or(0.0),
            );
            if !close(x, y, 0.25, 0.1) {
                let d = format!("{call} {:+.2}", x - y);
                if timing(call) {
                    waits.push(d);
                } else {
                    work.push(d);
                }
            }
        }
        Some((work, waits))
    }

    /// The measured reason beside a ratio.
    fn verdict(r: &PairResult) -> String {
        let Some(s) = ratios(&r.rust, &r.c) else {
            return "no C side on this run".into();
        };
        let mut why = Vec::new();
        if r.pair.c != r.pair.name {
            why.push(format!(
                "different work by design (the C side is {})",
                r.pair.c
            ));
        }
        let diffs = Self::call_diffs(r);
        match &diffs {
            Some((work, waits)) => {
                if !work.is_empty() {
                    why.push(format!(
                        "the work differs: system calls per iteration, Rust − C: {}",
                        work.join(", ")
                    ));
                }
                if !waits.is_empty() {
                    why.push(format!(
                        "the same calls, waited or split differently (Rust − C: {})",
                        waits.join(", ")
                    ));
                }
            }
            None => why.push("system calls not counted (run with --why)".into()),
        }
        for (what, f, abs) in [
            ("page faults", (|s: &Sample| s.faults) as fn(&Sample) -> f64, 0.5),
            ("waits (voluntary switches)", |s: &Sample| s.switches, 0.5),
        ] {
            let (a, b) =
                (med(&r.rust, f).unwrap_or(0.0), med(&r.c, f).unwrap_or(0.0));
            if !close(a, b, abs, 0.1) {
                why.push(format!(
                    "{what} per iteration {a:.2} (Rust) vs {b:.2} (C)"
                ));
            }
        }
        let (a, b) = (
            med(&r.rust, |s| s.preempted).unwrap_or(0.0),
            med(&r.c, |s| s.preempted).unwrap_or(0.0),
        );
        if !close(a, b, 2.0, 0.25) {
            why.push(format!(
                "preemptions (involuntary switches) per round {a:.0} (Rust) vs {b:.0} (C)"
            ));
        }
        let same_calls =
            diffs.as_ref().is_some_and(|(w, t)| w.is_empty() && t.is_empty());
        let mut v = if (s.med - 1.0).abs() <= BAND {
            format!("within 1.00 ± {BAND:.2}")
        } else {
            format!("OUTSIDE 1.00 ± {BAND:.2}")
        };
        if same_calls {
            v += "; the same system calls";
        }
        let outside = (s.med - 1.0).abs() > BAND;
        let straddle = s.q1 <= 1.0 && s.q3 >= 1.0;
        if outside && why.is_empty() && !straddle {
            v += ", page faults and waits: UNEXPLAINED by these counts";
        }
        if outside && straddle {
            v += "; the rounds straddle 1.00 (q1–q3)";
        }
        for w in why {
            v += "; ";
            v += &w;
        }
        v
    }

    fn verdicts(&self, groups: &[&str]) -> String {
        let mut t = String::from(
            "\nwhy: each ratio beside what was measured in the same rounds (page faults and waits,\n\
             i.e. voluntary context switches, per iteration; preemptions, i.e. involuntary ones,\n\
             per round; of the process and its children) and counted by `strace -f -c`\n\
             (system calls per iteration: the calls of 2K iterations minus those of K). Beside\n\
             each ratio: what differs between the sides. The work differs when other or more\n\
             calls are made; waits (sched_yield, futex) and how many reads carry the same\n\
             bytes follow the timing; so do preemptions (another program, or the other side\n\
             waking on the same CPU), of which only a difference between the sides is shown.\n\
             OUTSIDE marks a ratio beyond 1.00 ± 0.05.\n",
        );
        for r in self.results.iter().filter(|r| groups.contains(&r.pair.group)) {
            let m = ratios(&r.rust, &r.c)
                .map(|s| format!("{:.2}", s.med))
                .unwrap_or_default();
            let _ =
                writeln!(t, "{:<36} {:>5}  {}", r.pair.name, m, Self::verdict(r));
        }
        t
    }

    fn calls(&self, groups: &[&str]) -> String {
        let fmt = |c: &Calls| {
            let v: Vec<String> = c
                .iter()
                .filter(|(_, n)| n.abs() >= 0.25)
                .map(|(k, n)| format!("{k} {n:.2}"))
                .collect();
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        let mut t = String::from(
            "\nsystem calls per iteration (strace -f -c, children included; counts under 0.25\n\
             left out). A count that follows the timing (sched_yield, futex, partial reads)\n\
             varies between the two counting runs and can even come out negative.\n",
        );
        let mut any = false;
        for r in self.results.iter().filter(|r| groups.contains(&r.pair.group)) {
            let Some(rust) = &r.calls_rust else { continue };
            any = true;
            let c = match (&r.calls_c, Self::call_diffs(r)) {
                (Some(_), Some((w, t))) if w.is_empty() && t.is_empty() => {
                    "C: the same".to_string()
                }
                (Some(c), _) => format!("C: {}", fmt(c)),
                (None, _) => "C: not counted".to_string(),
            };
            let _ = writeln!(
                t,
                "{:<36} Rust: {}\n{:<36} {c}",
                r.pair.name,
                fmt(rust),
                ""
            );
        }
        if any {
            t
        } else {
            "\nsystem calls per iteration: not counted on this run (`--why` needs strace)\n".into()
        }
    }

    /// The size of each forking process: the fork figures depend on it.
    fn images(&self) -> String {
        if self.group("spawn").next().is_none() {
            return String::new();
        }
        let mut t = format!(
            "\nthe forking process at the start of each round (median): RSS and mappings (VMAs)\n\
             {:<34} {:>16} {:>16} {:>16}\n",
            "pair", "Rust round", "C round", "C own process"
        );
        let img = |v: &[Sample]| match (
            med(v, |s| s.rss_kib as f64),
            med(v, |s| s.vmas as f64),
        ) {
            (Some(r), Some(m)) => format!("{:.1} MiB, {m:.0}", r / 1024.0),
            _ => String::new(),
        };
        for r in self.group("spawn") {
            let line = format!(
                "{:<34} {:>16} {:>16} {:>16}",
                r.pair.name,
                img(&r.rust),
                img(&r.c),
                img(&r.own)
            );
            t += line.trim_end();
            t += "\n";
        }
        t
    }

    /// Everything: the book's `bench-versus-c.txt`.
    pub fn all(&self) -> String {
        let groups = ["spawn", "roundtrip", "bandwidth"];
        self.intro()
            + &self.time_table(
                "spawn",
                "spawn: one iteration starts a worker and waits for it (unpinned unless named)",
            )
            + &self.time_table(
                "roundtrip",
                "roundtrip: one iteration is one byte there and back between two processes",
            )
            + &self.bandwidth_table()
            + &self.verdicts(&groups)
            + &self.calls(&groups)
            + &self.images()
    }

    /// The pipes and shared memory only: the book's `bench-ipc.txt` (chapters 05, 06).
    pub fn ipc(&self) -> String {
        let groups = ["roundtrip", "bandwidth"];
        self.intro()
            + &self.time_table(
                "roundtrip",
                "roundtrip: one iteration is one byte there and back between two processes",
            )
            + &self.bandwidth_table()
            + &self.verdicts(&groups)
    }

    /// How the C reference was built, and how big its processes were.
    pub fn reference(&self) -> String {
        match self.c {
            None => {
                "The C reference was not built on this run: no C compiler (`cc`).\n"
                    .into()
            }
            Some(c) => {
                let own: Vec<Sample> = self
                    .results
                    .iter()
                    .flat_map(|r| r.own.iter().copied())
                    .collect();
                let drv: Vec<Sample> = self
                    .results
                    .iter()
                    .flat_map(|r| r.rust.iter().copied())
                    .collect();
                let img = |v: &[Sample]| {
                    format!(
                        "RSS {:.1} MiB, {:.0} mappings",
                        med(v, |s| s.rss_kib as f64).unwrap_or(0.0) / 1024.0,
                        med(v, |s| s.vmas as f64).unwrap_or(0.0)
                    )
                };
                format!(
                    "compiler: {}\n$ {}\n$ {}\n\
                     last-level cache of CPU 0: {}\n\
                     the driver (Rust and the loaded C), at the start of a round: {}\n\
                     the C reference as its own process, at the start of a round: {}\n",
                    c.compiler,
                    c.commands[0],
                    c.commands[1],
                    last_level_cache(),
                    img(&drv),
                    img(&own)
                )
            }
        }
    }

    /// Every round of every side, for whoever wants to look again.
    pub fn tsv(&self) -> String {
        let mut t = String::from("pair\tside\tround\tmedian_ns\trss_kib\tvmas\tfaults_per_iter\twaits_per_iter\tpreempted\n");
        for r in self.results {
            for (side, v) in [("rust", &r.rust), ("c", &r.c), ("own", &r.own)] {
                for (i, s) in v.iter().enumerate() {
                    let _ = writeln!(
                        t,
                        "{}\t{side}\t{i}\t{}\t{}\t{}\t{:.3}\t{:.3}\t{}",
                        r.pair.id(),
                        s.ns,
                        s.rss_kib,
                        s.vmas,
                        s.faults,
                        s.switches,
                        s.preempted
                    );
                }
            }
        }
        t
    }
}
