//! The exercises (`exercises/`, listed in exercise_list.rs): `lab exercises` lists them
//! with your progress, `lab hint NAME` gives a hint, `lab check NAME` (check.rs) judges
//! your file. The progress is kept in target/exercises-progress.txt.

pub use crate::exercise_list::EXERCISES;
use crate::observer::Observer;
use proclab::Lab;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One exercise.
#[derive(Clone)]
pub struct Exercise {
    /// `lab check NAME`; the bin is `ex-NAME`.
    pub name: &'static str,
    /// The lab (and chapter) it belongs to.
    pub lab: u32,
    /// The file under exercises/ (the reference solution and the wrong solution have the
    /// same name under exercises/solutions/ and exercises/wrong/).
    pub file: &'static str,
    /// What to do, in one line.
    pub task: &'static str,
    /// What the check verifies (the claim of its verdict).
    pub goal: &'static str,
    pub hint: &'static str,
    /// The check that the wrong solution fails, and what that solution gets wrong.
    pub wrong: (&'static str, &'static str),
    pub check: fn(&mut Lab, &mut Observer),
}

/// The exercise called `name`.
pub fn find(name: &str) -> Option<&'static Exercise> {
    EXERCISES.iter().find(|e| e.name == name)
}

/// `find`, or exit 2 with the list.
pub fn find_or_exit(name: &str) -> &'static Exercise {
    find(name).unwrap_or_else(|| {
        eprintln!("error: no exercise called {name:?}; `cargo run --bin lab -- exercises` lists them");
        std::process::exit(2)
    })
}

/// What the last check of an exercise said.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Progress {
    Done,
    NotYet,
    CouldNotRun,
}

impl Progress {
    pub fn word(self) -> &'static str {
        match self {
            Progress::Done => "done",
            Progress::NotYet => "not yet",
            Progress::CouldNotRun => "could not run",
        }
    }
}

/// target/exercises-progress.txt, beside the binaries' profile directories (or the file
/// named by PROCLAB_EXERCISES_PROGRESS).
pub fn progress_file() -> PathBuf {
    if let Some(p) = std::env::var_os("PROCLAB_EXERCISES_PROGRESS") {
        return PathBuf::from(p); // the tests keep their own
    }
    let me = std::env::current_exe().unwrap_or_default();
    let target = me.parent().and_then(|d| d.parent()).map(|d| d.to_path_buf());
    target.unwrap_or_else(|| PathBuf::from("target")).join("exercises-progress.txt")
}

/// The progress of every exercise checked so far.
pub fn progress() -> BTreeMap<String, Progress> {
    let text = std::fs::read_to_string(progress_file()).unwrap_or_default();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((name, word)) = line.split_once(' ') else { continue };
        let p = match word.trim() {
            "done" => Progress::Done,
            "not-yet" => Progress::NotYet,
            _ => Progress::CouldNotRun,
        };
        out.insert(name.to_string(), p);
    }
    out
}

/// Record the outcome of a check of the learner's own file.
pub fn record(name: &str, p: Progress) {
    let mut all = progress();
    all.insert(name.to_string(), p);
    let text: String = all
        .iter()
        .map(|(n, p)| format!("{n} {}\n", p.word().replace(' ', "-")))
        .collect();
    if let Err(e) = std::fs::write(progress_file(), text) {
        eprintln!(
            "note: could not save the progress in {}: {e}",
            progress_file().display()
        );
    }
}

/// The first exercise not done yet, in book order.
pub fn next() -> Option<&'static Exercise> {
    let done = progress();
    EXERCISES.iter().find(|e| done.get(e.name) != Some(&Progress::Done))
}

/// The book chapter of lab `n`, from the roster.
pub fn chapter(n: u32) -> String {
    crate::roster::LABS.iter().find(|l| l.number == n).map_or_else(
        || format!("chapter {n}"),
        |l| format!("book/src/{}", l.chapter),
    )
}

/// `lab exercises`: every exercise with its progress.
pub fn list(json: bool) {
    let done = progress();
    if json {
        for e in EXERCISES.iter() {
            let p = done.get(e.name).map_or("-", |p| p.word());
            let v = serde_json::json!({"name": e.name, "lab": e.lab, "file": e.file,
                "task": e.task, "goal": e.goal, "progress": p,
                "wrong_fails": e.wrong.0, "wrong": e.wrong.1});
            println!("{v}");
        }
        return;
    }
    let n = EXERCISES
        .iter()
        .filter(|e| done.get(e.name) == Some(&Progress::Done))
        .count();
    println!(
        "proclab exercises: {n} of {} done (progress: {})\n",
        EXERCISES.len(),
        progress_file().display()
    );
    for e in EXERCISES.iter() {
        let p = done.get(e.name).map_or("-", |p| p.word());
        println!("  {:02} {:<20} {:<13} exercises/{}", e.lab, e.name, p, e.file);
        println!("     {}", e.task);
    }
    match next() {
        Some(e) => println!(
            "\nNext: edit exercises/{}, then `cargo run --bin lab -- check {}` \
             (`lab hint {}` for a hint, `lab watch` to re-check on every save).",
            e.file, e.name, e.name
        ),
        None => println!("\nAll done."),
    }
}

/// `lab hint NAME`.
pub fn hint(name: &str) {
    let e = find_or_exit(name);
    println!(
        "{} (exercises/{}, {}):\n  {}\n",
        e.name,
        e.file,
        chapter(e.lab),
        e.task
    );
    println!("Hint: {}", e.hint);
    println!("\nThe check: {}.", e.goal);
}
