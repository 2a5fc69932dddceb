//! `lab check [NAME]`: build the exercise (cargo, feature `exercises`), run it under the
//! observer (`lab observe`, a re-executed `lab` that is a child subreaper: observer.rs)
//! and report; exit 0 passed, 3 not yet, 1 could not run (the compiler's first error is
//! shown), 2 bad input. Only a check of your own file changes the progress.

use crate::exercises::{self, Exercise, Progress};
use crate::observer::Observer;
use proclab::{observe, Common, Lab};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The exercise (`lab exercises` lists them); without it, the next one not done.
    pub name: Option<String>,
    /// Print JSON lines only: the observations, the checks and the verdict.
    #[arg(long)]
    pub json: bool,
    /// For the tests: check the reference solution, the wrong solution, or a fake that
    /// only prints what the solution printed (`PROCLAB_FAKE_OUTPUT`).
    #[arg(long, hide = true, value_parser = ["solution", "wrong", "fake"])]
    pub variant: Option<String>,
    /// For the tests: use the binaries already built.
    #[arg(long, hide = true)]
    pub no_build: bool,
}

/// The observer's own arguments (`lab observe`, started by `lab check` only).
#[derive(clap::Args)]
pub struct ObserveArgs {
    name: String,
    program: PathBuf,
    arg0: String,
    #[arg(long)]
    json: bool,
}

pub fn check(a: &CheckArgs) -> ! {
    let ex = match &a.name {
        Some(n) => exercises::find_or_exit(n),
        None => match exercises::next() {
            Some(e) => e,
            None => {
                println!("All {} exercises are done.", exercises::EXERCISES.len());
                std::process::exit(0)
            }
        },
    };
    std::process::exit(run(ex, a.variant.as_deref(), a.json, !a.no_build))
}

/// Build and check `ex` (your file, or a `variant` of the tests); returns the exit code.
pub fn run(ex: &Exercise, variant: Option<&str>, json: bool, build: bool) -> i32 {
    let mine = format!("ex-{}", ex.name);
    let (bin, arg0) = match variant {
        None => (mine.as_str(), mine.as_str()),
        Some("solution") => ("ex-solutions", ex.name),
        Some("wrong") => ("ex-wrong", ex.name),
        Some(_) => ("ex-wrong", "fake"),
    };
    let file = match variant {
        None => format!("exercises/{}", ex.file),
        Some("solution") => format!("exercises/solutions/{}", ex.file),
        Some(_) => format!("exercises/wrong/{}", ex.file),
    };
    if !json {
        println!("lab check {}: {file} ({})", ex.name, exercises::chapter(ex.lab));
        println!("  task: {}", ex.task);
    }
    if build {
        if let Err(error) = cargo_build(bin, json) {
            could_not_compile(ex, variant, json, &file, &error);
            return proclab::EXIT_ERROR;
        }
    }
    let me = std::env::current_exe().unwrap_or_default();
    let program = me.parent().unwrap_or(Path::new(".")).join(bin);
    let mut observer = Command::new(&me);
    observer.args(["observe", ex.name]).arg(&program).arg(arg0);
    if json {
        observer.arg("--json");
    }
    // The observer's stdin is its lifeline: it ends when this process does.
    let status = observer.stdin(Stdio::piped()).spawn().and_then(|mut o| {
        let _lifeline = o.stdin.take();
        o.wait()
    });
    let code = match status {
        Ok(s) => match std::os::unix::process::ExitStatusExt::signal(&s) {
            // Interrupted (Ctrl-C): no verdict, and the progress is left as it was.
            Some(sig) => return 128 + sig,
            None => s.code().unwrap_or(proclab::EXIT_ERROR),
        },
        Err(e) => {
            eprintln!("error: cannot start the observer {}: {e}", me.display());
            proclab::EXIT_ERROR
        }
    };
    if variant.is_none() {
        let p = match code {
            0 => Progress::Done,
            3 => Progress::NotYet,
            _ => Progress::CouldNotRun,
        };
        exercises::record(ex.name, p);
        if !json {
            advise(ex, p);
        }
    }
    code
}

fn advise(ex: &Exercise, p: Progress) {
    match p {
        Progress::Done => match exercises::next() {
            Some(n) => println!(
                "\nDone: {} passed. Next: exercises/{} (`cargo run --bin lab -- check {}`).",
                ex.name, n.file, n.name
            ),
            None => println!("\nDone: {} passed, and so has every exercise.", ex.name),
        },
        _ => println!(
            "\nNot yet. Edit exercises/{} and check again; `cargo run --bin lab -- hint {}` \
             gives a hint.",
            ex.file, ex.name
        ),
    }
}

/// `cargo build --features exercises --bin BIN` in the profile `lab` was built with;
/// the compiler's first error if it fails.
fn cargo_build(bin: &str, json: bool) -> Result<(), String> {
    let me = std::env::current_exe().unwrap_or_default();
    let release = me.parent().is_some_and(|d| d.ends_with("release"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut c = Command::new(cargo);
    c.args(["build", "--quiet", "--color", "never", "--features", "exercises"])
        .args(["--bin", bin, "--manifest-path"])
        .arg(&manifest);
    if release {
        c.arg("--release");
    }
    if !json {
        println!("  building {bin} (the first build takes a minute) ...");
    }
    let out = c.stdin(Stdio::null()).stdout(Stdio::null()).output();
    let out = out.map_err(|e| format!("cannot run cargo: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(first_error(&String::from_utf8_lossy(&out.stderr)))
}

/// The first `error` block of rustc's output (up to the blank line that ends it).
pub fn first_error(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    let Some(start) = lines.iter().position(|l| l.starts_with("error")) else {
        return stderr.trim().to_string();
    };
    let len = lines[start..].iter().position(|l| l.trim().is_empty());
    let block = &lines[start..start + len.unwrap_or(lines.len() - start)];
    let more = lines[start + block.len()..]
        .iter()
        .filter(|l| l.starts_with("error["))
        .count();
    let mut out = block.join("\n");
    if more > 0 {
        out += &format!("\n(and {more} more error(s): run `cargo build --features exercises` to see them)");
    }
    out
}

fn could_not_compile(
    ex: &Exercise,
    variant: Option<&str>,
    json: bool,
    file: &str,
    error: &str,
) {
    if json {
        let v = serde_json::json!({"event": "verdict", "lab": "check", "ok": false,
            "outcome": "could_not_run", "exercise": ex.name, "error": error,
            "claim": ex.goal, "checks": 0, "failed": []});
        println!("{v}");
    } else {
        println!(
            "\n{file} does not compile; the compiler's first error:\n\n{error}\n"
        );
        println!("verdict: COULD NOT RUN (it does not compile): {}", ex.goal);
    }
    if variant.is_none() {
        exercises::record(ex.name, Progress::CouldNotRun);
    }
}

/// `lab observe NAME PROGRAM ARG0`: the observer process (started by `lab check`).
pub fn observe(a: &ObserveArgs) -> ! {
    let ex = exercises::find_or_exit(&a.name);
    let mut lab = Lab::start(
        "check",
        ex.goal,
        &Common { json: a.json, step: false, timeline: false },
    );
    let mut obs = Observer::start(a.program.clone(), &a.arg0, a.json);
    lab.section(&format!("{}: {}", ex.name, ex.task));
    (ex.check)(&mut lab, &mut obs);
    if !lab.all_ok() {
        obs.explain(&mut lab);
    }
    let left = obs.stop();
    if !left.is_empty() {
        observe!(
            lab,
            "left_running",
            "{n} of its processes were still running at the end; the checker killed \
             them: {left:?}",
            n = left.len(),
            left
        );
    }
    lab.finish()
}
