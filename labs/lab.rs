//! # lab: the runner
//!
//! `cargo run --bin lab` lists the labs; `lab all` runs every lab in order and prints a table
//! of verdicts (exit 1 if any lab did not verify); `lab record` runs each lab and writes its
//! output, with the command, date, kernel and CPU, to `book/src/measured/NAME.txt`;
//! `lab benchmarks` runs `cargo bench` and the plain C reference (`refbench.c`) in one session
//! and writes their figures to `book/src/measured/bench-GROUP.txt` and `refbench.txt`.

use clap::{Parser, Subcommand};
use proclab::procfacts;
use proclab::roster::{self, LabInfo, LABS};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use proclab::benchsum;

/// The proclab runner: list, run or record the labs.
#[derive(Parser)]
#[command(name = "lab", version)]
struct Args {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the labs (the default).
    List,
    /// Run every lab (or the ones named) and print a table of verdicts.
    All {
        /// Only these labs.
        names: Vec<String>,
    },
    /// Run every lab (or the ones named) and write its output into book/src/measured/.
    Record {
        /// Only these labs.
        names: Vec<String>,
    },
    /// Run `cargo bench` (or only the groups named) and the C reference, then write the
    /// figures into book/src/measured/ (bench-GROUP.txt, refbench.txt).
    Benchmarks {
        /// Only these criterion groups (e.g. spawn ipc); all when empty.
        groups: Vec<String>,
        /// Do not run anything: only summarise what target/criterion already holds.
        #[arg(long)]
        no_run: bool,
    },
}

fn main() {
    let args = Args::parse();
    match args.cmd.unwrap_or(Cmd::List) {
        Cmd::List => list(),
        Cmd::All { names } => all(&select(&names)),
        Cmd::Record { names } => record(&select(&names)),
        Cmd::Benchmarks { groups, no_run } => benchmarks(&groups, no_run),
    }
}

fn select(names: &[String]) -> Vec<&'static LabInfo> {
    if names.is_empty() {
        return LABS.iter().collect();
    }
    names
        .iter()
        .map(|n| {
            roster::find(n).unwrap_or_else(|| {
                eprintln!("error: no lab called {n:?}; `cargo run --bin lab` lists them");
                std::process::exit(2)
            })
        })
        .collect()
}

fn list() {
    println!(
        "proclab: {} labs. Run one with `cargo run --bin NAME`, all with `cargo run --bin lab -- all`.\n",
        LABS.len()
    );
    for l in LABS {
        println!("  {:02} {:<22} {}", l.number, l.name, l.shows);
    }
    println!("\nEvery lab takes --help, --json and --step. The book: `mdbook serve book`.");
}

/// Build every lab (cargo run only built this one), then return the directory of the binaries.
/// `release`: build and use the optimised binaries (what `lab record` uses, so timings in the
/// book are not those of a debug build); otherwise the profile `lab` itself was built with.
fn bin_dir(release: bool) -> PathBuf {
    let me = std::env::current_exe().expect("current_exe");
    let mut dir = me.parent().expect("exe dir").to_path_buf();
    let release = release || dir.ends_with("release");
    if release && !dir.ends_with("release") {
        dir = dir.parent().expect("target dir").join("release");
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut build = Command::new(cargo);
    build
        .args(["build", "--quiet", "--bins", "--manifest-path"])
        .arg(&manifest);
    if release {
        build.arg("--release");
    }
    match build.status() {
        Ok(s) if s.success() => {}
        Ok(s) => {
            eprintln!("error: cargo build --bins failed ({s})");
            std::process::exit(1)
        }
        Err(e) => eprintln!("note: could not run cargo to build the labs ({e}); using the binaries already built"),
    }
    dir
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    secs: f64,
}

fn run(dir: &Path, l: &LabInfo, json: bool) -> Outcome {
    let mut cmd = Command::new(dir.join(l.name));
    cmd.args(l.args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    if json {
        cmd.arg("--json");
    }
    let start = Instant::now();
    match cmd.output() {
        Ok(out) => Outcome {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            secs: start.elapsed().as_secs_f64(),
        },
        Err(e) => {
            eprintln!("error: cannot run {}: {e}", dir.join(l.name).display());
            Outcome {
                code: None,
                stdout: String::new(),
                secs: 0.0,
            }
        }
    }
}

fn verdict_word(code: Option<i32>) -> &'static str {
    match code {
        Some(0) => "verified",
        Some(1) => "could not run",
        Some(2) => "bad input",
        Some(3) => "not observed",
        Some(_) => "failed",
        None => "killed",
    }
}

fn all(labs: &[&'static LabInfo]) {
    let dir = bin_dir(false);
    let mut rows = Vec::new();
    for l in labs {
        eprintln!("running {} ...", l.name);
        let out = run(&dir, l, true);
        let (checks, failed) = out
            .stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|v| v["event"] == "verdict")
            .map(|v| {
                (
                    v["checks"].as_u64().unwrap_or(0),
                    v["failed"].as_array().map(|a| a.len()).unwrap_or(0),
                )
            })
            .unwrap_or((0, 0));
        rows.push((l, out.code, checks, failed, out.secs));
    }
    println!("\n  lab                     verdict         checks   time");
    println!("  ----------------------- --------------- -------- ------");
    for (l, code, checks, failed, secs) in &rows {
        let passed = checks.saturating_sub(*failed as u64);
        println!(
            "  {:02} {:<20} {:<15} {:>3}/{:<4} {:>5.1}s",
            l.number,
            l.name,
            verdict_word(*code),
            passed,
            checks,
            secs
        );
    }
    let bad = rows.iter().filter(|r| r.1 != Some(0)).count();
    println!("\n  {} of {} labs verified.", rows.len() - bad, rows.len());
    std::process::exit(if bad == 0 { 0 } else { 1 });
}

/// Today's date and time in UTC, `2026-11-22 17:05 UTC`, without a date crate.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

fn header(command: &str, tool: &str) -> String {
    let (kernel, cpu, cpus) = procfacts::machine();
    format!(
        "$ {command}\n# recorded by `{tool}` on {}, Linux {kernel}, {cpus} x {cpu}\n",
        utc_now()
    )
}

fn benchmarks(groups: &[String], no_run: bool) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let out_dir = root.join("book/src/measured");
    std::fs::create_dir_all(&out_dir).expect("create book/src/measured");
    if !no_run {
        // One group at a time, each followed at once by the C figures doing the same work.
        let mut reference = String::new();
        for (group, figures) in benchsum::GROUPS {
            if !groups.is_empty() && !groups.iter().any(|g| g == group) {
                continue;
            }
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["bench", "--manifest-path"]).arg(root.join("Cargo.toml"));
            cmd.args(["--", &format!("^{group}/")]);
            match cmd.status() {
                Ok(s) if s.success() => {}
                other => {
                    eprintln!("error: cargo bench failed: {other:?}");
                    std::process::exit(1)
                }
            }
            if figures.is_empty() {
                continue;
            }
            match benchsum::run_refbench(root, &target, figures) {
                Ok(text) => reference += &format!("# right after `cargo bench -- '^{group}/'`\n{text}"),
                Err(e) => eprintln!("note: C reference not run: {e}"),
            }
        }
        if !reference.is_empty() {
            let command = "gcc -O2 -pthread ../shared/reference/refbench.c -o refbench && ./refbench FIGURES...";
            std::fs::write(
                out_dir.join("refbench.txt"),
                header(command, "lab benchmarks") + &reference,
            )
            .expect("write refbench.txt");
            eprintln!("wrote {}", out_dir.join("refbench.txt").display());
        }
    }
    let results = benchsum::collect(&target.join("criterion"));
    if results.is_empty() {
        eprintln!(
            "error: no criterion results under {}",
            target.join("criterion").display()
        );
        std::process::exit(1)
    }
    let reference_text = std::fs::read_to_string(out_dir.join("refbench.txt")).unwrap_or_default();
    for (group, rows) in benchsum::by_group(&results) {
        if !groups.is_empty() && !groups.contains(&group) {
            continue;
        }
        let reference = benchsum::parse_refbench(&benchsum::section(&reference_text, &group));
        let command = format!("cargo bench -- '^{group}/'");
        let text = header(&command, "lab benchmarks") + &benchsum::table(&rows, &reference);
        let path = out_dir.join(format!("bench-{group}.txt"));
        std::fs::write(&path, text).expect("write bench summary");
        let svg = target.join("criterion").join(&group).join("report/violin.svg");
        if svg.exists() {
            let _ = std::fs::copy(&svg, out_dir.join(format!("bench-{group}.svg")));
        }
        eprintln!("wrote {}", path.display());
    }
}

fn record(labs: &[&'static LabInfo]) {
    let dir = bin_dir(true);
    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/measured");
    std::fs::create_dir_all(&out_dir).expect("create book/src/measured");
    let mut failed = 0;
    for l in labs {
        eprint!("recording {} ... ", l.name);
        let out = run(&dir, l, false);
        if out.code != Some(0) {
            eprintln!("{} (exit {:?}): not written", verdict_word(out.code), out.code);
            failed += 1;
            continue;
        }
        let mut command = format!("cargo run --release --bin {}", l.name);
        if !l.args.is_empty() {
            command += &format!(" -- {}", l.args.join(" "));
        }
        let text = header(&command, "lab record") + &out.stdout;
        let path = out_dir.join(format!("{}.txt", l.name));
        std::fs::write(&path, text).expect("write measured output");
        eprintln!("ok ({:.1}s) -> {}", out.secs, path.display());
    }
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
