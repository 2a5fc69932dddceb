//! # lab: the runner
//!
//! `lab` lists the labs (`roster.rs`); `lab all` runs them (`all.rs`); `lab record` writes
//! the book's outputs and, from the same runs' events, their pictures (`record.rs`,
//! `svg.rs`); `lab benchmarks` runs the benches beside the C reference (`benchmarks.rs`,
//! `benchsum.rs`), `lab charts` draws them (`charts.rs`); `lab exercises`, `check`,
//! `hint` and `watch` are the exercises' (`exercises.rs`, `check.rs`).

mod all;
mod benchmarks;
mod benchsum;
mod chart_draw;
mod charts;
mod check;
mod checks;
mod exercise_list;
mod exercise_list_later;
mod exercises;
mod observer;
mod record;
mod roster;
mod svg;
mod teardown;
mod timeline;
mod watch;

use clap::{Parser, Subcommand};
use proclab::procfacts;
use roster::{LabInfo, LABS};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

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
    /// Draw the pictures again (book/src/measured/NAME.svg) from the events recorded
    /// beside each output, without running anything (after a change to the drawing).
    Redraw {
        /// Only these labs.
        names: Vec<String>,
        /// Where the events are and the pictures go (default: book/src/measured).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Draw the benchmark charts from the figures `lab benchmarks` recorded in
    /// book/src/measured/: versus-c-GROUP.svg (Rust and C side by side) and
    /// bench-GROUP.svg (criterion's medians). `lab benchmarks` draws them too.
    Charts {
        /// Only these groups (e.g. spawn roundtrip); all when empty.
        groups: Vec<String>,
    },
    /// Run the criterion groups and the rounds against the C reference (or only the
    /// groups named), then write the figures into book/src/measured/ (bench-*.txt).
    Benchmarks {
        /// Only these groups (spawn roundtrip bulk compute pool versus-c; ipc = versus-c); all when empty.
        groups: Vec<String>,
        /// Do not run anything: only summarise what target/criterion already holds.
        #[arg(long)]
        no_run: bool,
    },
    /// List the exercises (exercises/) and your progress.
    Exercises {
        /// One JSON object per exercise instead.
        #[arg(long)]
        json: bool,
    },
    /// Build your exercise and judge it from the kernel's accounting.
    Check(check::CheckArgs),
    /// A hint for an exercise.
    Hint { name: String },
    /// Check an exercise again every time you save it.
    Watch { name: Option<String> },
    #[command(hide = true)]
    Observe(check::ObserveArgs),
}

fn main() {
    let args = Args::parse();
    match args.cmd.unwrap_or(Cmd::List) {
        Cmd::List => list(),
        Cmd::All { names } => all::all(&select(&names)),
        Cmd::Record { names } => record::record(&select(&names)),
        Cmd::Redraw { names, dir } => record::redraw(&select(&names), dir),
        Cmd::Charts { groups } => charts::charts(&groups),
        Cmd::Benchmarks { groups, no_run } => {
            benchmarks::benchmarks(&groups, no_run)
        }
        Cmd::Exercises { json } => exercises::list(json),
        Cmd::Check(a) => check::check(&a),
        Cmd::Hint { name } => exercises::hint(&name),
        Cmd::Watch { name } => watch::watch(name.as_deref()),
        Cmd::Observe(a) => check::observe(&a),
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
                eprintln!(
                    "error: no lab called {n:?}; `cargo run --bin lab` lists them"
                );
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
    println!(
        "\nEvery lab takes --help, --json, --step and --timeline. The book: `mdbook serve book`."
    );
}

/// Build every lab (cargo run only built this one), then return the directory of the binaries.
/// `release`: build and use the optimised binaries (what `lab record` uses, so timings in the
/// book are not those of a debug build); otherwise the profile `lab` itself was built with.
pub fn bin_dir(release: bool) -> PathBuf {
    let me = std::env::current_exe().expect("current_exe");
    let mut dir = me.parent().expect("exe dir").to_path_buf();
    let release = release || dir.ends_with("release");
    if release && !dir.ends_with("release") {
        dir = dir.parent().expect("target dir").join("release");
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "--bins", "--manifest-path"]).arg(&manifest);
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

/// How one run of a lab ended.
pub struct Outcome {
    pub code: Option<i32>,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    pub stdout: String,
    pub secs: f64,
}

pub fn run(dir: &Path, l: &LabInfo, json: bool) -> Outcome {
    run_env(dir, l, json, &[])
}

/// [`run`] with extra environment variables (`lab record` names the events file).
pub fn run_env(
    dir: &Path,
    l: &LabInfo,
    json: bool,
    env: &[(&str, &Path)],
) -> Outcome {
    let mut cmd = Command::new(dir.join(l.name));
    cmd.args(l.args)
        .envs(env.iter().map(|(k, v)| (k, v.as_os_str())))
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
            signal: std::os::unix::process::ExitStatusExt::signal(&out.status),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            secs: start.elapsed().as_secs_f64(),
        },
        Err(e) => {
            eprintln!("error: cannot run {}: {e}", dir.join(l.name).display());
            Outcome { code: None, signal: None, stdout: String::new(), secs: 0.0 }
        }
    }
}

pub fn verdict_word(code: Option<i32>) -> &'static str {
    match code {
        Some(0) => "verified",
        Some(1) => "could not run",
        Some(2) => "bad input",
        Some(3) => "not observed",
        Some(_) => "failed",
        None => "killed",
    }
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

pub fn header(command: &str, tool: &str) -> String {
    let (kernel, cpu, cpus) = procfacts::machine();
    format!(
        "$ {command}\n# recorded by `{tool}` on {}, Linux {kernel}, {cpus} x {cpu}\n",
        utc_now()
    )
}
