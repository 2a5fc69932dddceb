//! Rust and C on the same work, in alternating rounds: `cargo bench --bench versus_c`.
//!
//! Each pair is one figure of `common/rounds.rs` (Rust) and the function of the same name
//! in `benches/c/refbench.c` (C), built with the system `cc` and loaded into this process,
//! so both fork from the same process image. A pair runs `--rounds` rounds; in each, the
//! Rust side, the C side and the C reference as a process of its own ("C own") each run
//! one round of N iterations, in an order that rotates from round to round, all within a
//! few seconds. A round's figure is the median of its iterations, each timed alone; a
//! side's figure is the median over its rounds; Rust/C is the median of the per-round
//! time ratios (above 1: Rust is slower), with their quartiles and extremes.
//!
//! Options: `--rounds N` (15), `--why` (then count each side's system calls per
//! iteration with `strace -f -c`), `--out DIR` (write the tables there, for
//! `lab benchmarks`), `--list`; other arguments filter pairs by `group/name` (a leading
//! `^` anchors), as criterion's do. Criterion's own options are accepted and ignored, so
//! `cargo bench -- --save-baseline x` runs this too. `--side`, `--iters`, `--warm` and
//! `--exact` run one side alone (what `--why` runs under strace).

#[path = "../common/mod.rs"]
mod common;
mod cref;
mod report;
mod why;

use common::rounds::{self, Figure};
use std::path::PathBuf;

/// One comparison: the Rust figure `name`, the C figure `c` (the same name, except where
/// the pair shows what Rust's standard way adds), and N timed iterations per round.
pub struct Pair {
    pub group: &'static str,
    pub name: &'static str,
    pub c: &'static str,
    pub iters: usize,
    pub warm: usize,
}

const fn pair(group: &'static str, name: &'static str, iters: usize) -> Pair {
    Pair { group, name, c: name, iters, warm: iters / 10 + 1 }
}

pub const PAIRS: &[Pair] = &[
    Pair { c: "pthread_create_join", ..pair("spawn", "thread_spawn_join", 300) },
    pair("spawn", "pthread_create_join", 300),
    pair("spawn", "fork_exit_wait", 100),
    pair("spawn", "fork_exit_wait_same_cpu", 100),
    pair("spawn", "vfork_true_wait", 30),
    pair("spawn", "fork_exec_true_wait", 30),
    pair("spawn", "posix_spawn_true_wait", 30),
    pair("roundtrip", "pipe_rtt_same_cpu", 2000),
    pair("roundtrip", "pipe_rtt_cross_cpu", 400),
    pair("roundtrip", "pipe_rtt_unpinned", 400),
    pair("roundtrip", "socketpair_rtt_same_cpu", 2000),
    pair("roundtrip", "socketpair_rtt_cross_cpu", 400),
    pair("roundtrip", "futex_rtt_same_cpu", 2000),
    pair("roundtrip", "futex_rtt_cross_cpu", 400),
    pair("bandwidth", "memcpy_64KiB", 400),
    pair("bandwidth", "memcpy_64MiB", 100),
    pair("bandwidth", "pipe_bw_64KiB_same_cpu", 48),
    pair("bandwidth", "pipe_bw_64KiB_cross_cpu", 24),
    pair("bandwidth", "pipe_bw_64MiB_same_cpu", 48),
    pair("bandwidth", "pipe_bw_64MiB_cross_cpu", 24),
    pair("bandwidth", "socketpair_bw_64MiB_cross_cpu", 24),
    pair("bandwidth", "shm_bw_64KiB_same_cpu", 200),
    pair("bandwidth", "shm_bw_64KiB_cross_cpu", 200),
    pair("bandwidth", "shm_bw_64MiB_same_cpu", 48),
    pair("bandwidth", "shm_bw_64MiB_cross_cpu", 48),
    pair("bandwidth", "vmsplice_read_bw_64KiB_cross_cpu", 100),
    pair("bandwidth", "vmsplice_read_bw_64MiB_cross_cpu", 48),
    pair("bandwidth", "vmsplice_splice_bw_64KiB_same_cpu", 100),
    pair("bandwidth", "vmsplice_splice_bw_64KiB_cross_cpu", 100),
];

impl Pair {
    pub fn id(&self) -> String {
        format!("{}/{}", self.group, self.name)
    }
    pub fn figure(&self) -> Figure {
        Figure::parse(self.name).expect("every pair names a figure")
    }
}

/// Who runs a round: this process's Rust code, the C reference loaded into this
/// process, or the C reference as a process of its own.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Side {
    Rust,
    C,
    Own,
}

/// One round of one side: the median iteration, and the facts around it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub ns: u64,
    /// The running process's RSS (KiB) and number of mappings at the start of the round.
    pub rss_kib: u64,
    pub vmas: u64,
    /// Page faults and voluntary context switches (waits), its own and its reaped
    /// children's, per iteration.
    pub faults: f64,
    pub switches: f64,
    /// Involuntary context switches in the round: another program took the CPU.
    pub preempted: f64,
}

pub fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// RSS in KiB and number of mappings of this process.
pub fn image() -> (u64, u64) {
    let me = std::process::id() as i32;
    let rss = proclab::procfacts::status_field(me, "VmRSS").unwrap_or(0);
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    (rss, maps.lines().count() as u64)
}

/// Page faults, voluntary and involuntary context switches so far, of this process and
/// its reaped children.
pub fn usage() -> (u64, u64, u64) {
    let get = |who| {
        // SAFETY: a zeroed rusage is a valid value for getrusage to fill.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer to a rusage.
        unsafe { libc::getrusage(who, &mut u) };
        u
    };
    let (s, c) = (get(libc::RUSAGE_SELF), get(libc::RUSAGE_CHILDREN));
    let faults = s.ru_minflt + s.ru_majflt + c.ru_minflt + c.ru_majflt;
    let (waits, preempted) = (s.ru_nvcsw + c.ru_nvcsw, s.ru_nivcsw + c.ru_nivcsw);
    (faults as u64, waits as u64, preempted as u64)
}

/// One round in this process, by `run` (the Rust code or the loaded C).
fn in_process(warm: usize, iters: usize, run: impl FnOnce(&mut [u64])) -> Sample {
    let mut out = vec![0u64; iters];
    let (rss_kib, vmas) = image();
    let (f0, s0, p0) = usage();
    run(&mut out);
    let (f1, s1, p1) = usage();
    let n = (warm + iters) as f64;
    Sample {
        ns: median(&mut out),
        rss_kib,
        vmas,
        faults: (f1 - f0) as f64 / n,
        switches: (s1 - s0) as f64 / n,
        preempted: (p1 - p0) as f64,
    }
}

pub fn run_side(
    side: Side,
    p: &Pair,
    warm: usize,
    iters: usize,
    c: Option<&cref::CRef>,
) -> Option<Sample> {
    match side {
        Side::Rust => Some(in_process(warm, iters, |out| {
            rounds::round(&p.figure(), warm, out)
        })),
        Side::C => {
            let c = c?;
            Some(in_process(warm, iters, |out| c.round(p.c, warm, out)))
        }
        Side::Own => c?.own_round(p.c, warm, iters),
    }
}

/// What the command line asked for.
pub struct Args {
    pub rounds: usize,
    pub why: bool,
    pub out: Option<PathBuf>,
    pub list: bool,
    pub side: Option<Side>,
    pub iters: Option<usize>,
    pub warm: Option<usize>,
    pub exact: bool,
    /// `cargo bench` passes `--bench`; without it (`cargo test --benches`), each pair
    /// runs one short round only, to show that it works.
    pub bench: bool,
    pub filters: Vec<String>,
}

/// Criterion's options that take a value: skipped with it.
const CRITERION_VALUED: &[&str] = &[
    "--save-baseline",
    "--baseline",
    "--baseline-lenient",
    "--load-baseline",
    "--measurement-time",
    "--warm-up-time",
    "--sample-size",
    "--nresamples",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--profile-time",
    "--plotting-backend",
    "--output-format",
    "--color",
    "--format",
    "-c",
];

fn parse_args(mut it: impl Iterator<Item = String>) -> Args {
    let mut a = Args {
        rounds: 15,
        why: false,
        out: None,
        list: false,
        side: None,
        iters: None,
        warm: None,
        exact: false,
        bench: false,
        filters: Vec::new(),
    };
    let num = |v: Option<String>, flag: &str| -> usize {
        v.and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            eprintln!("versus_c: {flag} takes a number");
            std::process::exit(2)
        })
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--rounds" => a.rounds = num(it.next(), "--rounds").max(1),
            "--iters" => a.iters = Some(num(it.next(), "--iters").max(1)),
            "--warm" => a.warm = Some(num(it.next(), "--warm")),
            "--why" => a.why = true,
            "--out" => a.out = it.next().map(PathBuf::from),
            "--list" => a.list = true,
            "--exact" => a.exact = true,
            "--bench" => a.bench = true,
            "--side" => {
                a.side = match it.next().as_deref() {
                    Some("rust") => Some(Side::Rust),
                    Some("c") => Some(Side::C),
                    Some("own") => Some(Side::Own),
                    _ => {
                        eprintln!("versus_c: --side takes rust, c or own");
                        std::process::exit(2)
                    }
                }
            }
            f if CRITERION_VALUED.contains(&f) => {
                it.next();
            }
            f if f.starts_with('-') => {} // --bench, --noplot, ...: criterion's, ignored
            _ => a.filters.push(arg),
        }
    }
    a
}

fn selected(a: &Args, p: &Pair) -> bool {
    let id = p.id();
    let cross_ok = proclab::cpu::cpus() >= 2
        || p.figure().place != common::Placement::CrossCpu;
    cross_ok
        && (a.filters.is_empty()
            || a.filters.iter().any(|f| match (a.exact, f.strip_prefix('^')) {
                (true, _) => *f == id || *f == p.name,
                (false, Some(anchored)) => id.starts_with(anchored),
                (false, None) => id.contains(f.as_str()),
            }))
}

fn main() {
    common::plain_environment();
    let mut a = parse_args(std::env::args().skip(1));
    if !a.bench && a.side.is_none() && !a.list {
        println!("versus_c: test mode (no --bench): one short round per pair");
        (a.rounds, a.iters, a.warm, a.why) = (1, Some(3), Some(1), false);
    }
    let pairs: Vec<&Pair> = PAIRS.iter().filter(|p| selected(&a, p)).collect();
    if a.list {
        for p in &pairs {
            println!("{}: versus_c", p.id());
        }
        return;
    }
    if pairs.is_empty() {
        return; // a filter for criterion's groups: nothing here
    }
    if let Some(side) = a.side {
        // One side alone, for `--why`: no table.
        let c =
            (side != Side::Rust).then(|| cref::CRef::build(true).ok()).flatten();
        for p in &pairs {
            let (warm, iters) =
                (a.warm.unwrap_or(p.warm), a.iters.unwrap_or(p.iters));
            for _ in 0..a.rounds {
                if run_side(side, p, warm, iters, c.as_ref()).is_none() {
                    eprintln!("versus_c: {} cannot run on side {side:?}", p.id());
                    std::process::exit(1)
                }
            }
        }
        return;
    }
    let c = match cref::CRef::build(false) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("versus_c: {e}; the C columns stay empty");
            None
        }
    };
    let sides: Vec<Side> = match c {
        Some(_) => vec![Side::Rust, Side::C, Side::Own],
        None => vec![Side::Rust],
    };
    let mut results = Vec::new();
    for p in &pairs {
        let (warm, iters) = (a.warm.unwrap_or(p.warm), a.iters.unwrap_or(p.iters));
        let mut r = report::PairResult::new(p, iters);
        for round in 0..a.rounds {
            // The order rotates, so that no side always runs first or last.
            for k in 0..sides.len() {
                let side = sides[(round + k) % sides.len()];
                let s = run_side(side, p, warm, iters, c.as_ref());
                r.push(side, s.expect("a side that was built runs"));
            }
        }
        eprintln!("versus_c: {} done", p.id());
        results.push(r);
    }
    if a.why {
        why::count_all(&mut results, c.is_some());
    }
    let text =
        report::Report { results: &results, rounds: a.rounds, c: c.as_ref() };
    let all = text.all();
    print!("{all}");
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).expect("create --out directory");
        let write = |name: &str, body: String| {
            std::fs::write(dir.join(name), body).expect("write --out file")
        };
        write("versus-c.txt", all);
        write("ipc.txt", text.ipc());
        write("refbench.txt", text.reference());
        write("rounds.tsv", text.tsv());
        eprintln!("versus_c: wrote {}", dir.display());
    }
}
