//! The exercises (`exercises/`, `lab check`) and proof that their checker can fail: every
//! exercise as given fails its check (exit 3); every reference solution passes (exit 0);
//! every wrong solution fails the check its entry names; a fake that prints what the
//! solution printed, doing nothing, fails. A compile error gives exit 1 with the compiler's
//! first error, an unknown name exit 2; `lab watch` checks again on a save; a SIGKILLed
//! `lab check` leaves nothing behind; the list, the [[bin]]s, the files and the book agree.
mod common;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path))
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// A directory of this test run's own (progress file, saved outputs).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir()
            .join(format!("proclab-exercises-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("scratch dir");
        d
    })
}

/// `lab` with the environment of a test run (its own progress file, no colour).
fn lab(tag: &str) -> Command {
    let mut c = Command::new(common::bin("lab"));
    c.env(common::TAG_VAR, tag)
        .env("NO_COLOR", "1")
        .env("PROCLAB_EXERCISES_PROGRESS", scratch().join("progress.txt"))
        .stdin(Stdio::null());
    c
}

/// The exercises, as `lab exercises --json` lists them.
fn exercises() -> &'static Vec<Value> {
    static LIST: OnceLock<Vec<Value>> = OnceLock::new();
    LIST.get_or_init(|| {
        let out = lab(&common::new_tag("list"))
            .args(["exercises", "--json"])
            .output()
            .expect("lab exercises");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    })
}

/// Build every exercise program once (feature `exercises`), before any check runs.
fn build() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut c = Command::new(cargo);
        c.args([
            "build",
            "--quiet",
            "--features",
            "exercises",
            "--bins",
            "--manifest-path",
        ])
        .arg(root().join("Cargo.toml"));
        if common::bin("lab").parent().is_some_and(|d| d.ends_with("release")) {
            c.arg("--release");
        }
        let s = c.status().expect("cargo build --features exercises");
        assert!(s.success(), "cargo build --features exercises --bins failed");
    });
}

/// What one `lab check --json` printed and how it exited.
struct Check {
    code: Option<i32>,
    verdict: Value,
    stdout: String,
}

impl Check {
    fn failed(&self) -> Vec<String> {
        let f = self.verdict["failed"].as_array().cloned().unwrap_or_default();
        f.iter().filter_map(|v| v.as_str().map(String::from)).collect()
    }
}

/// `lab check NAME --json --no-build [--variant V]`, then no process of it may be left.
fn check(name: &str, variant: Option<&str>, env: &[(&str, PathBuf)]) -> Check {
    let tag = common::new_tag(&format!("check-{name}"));
    let mut c = lab(&tag);
    c.args(["check", name, "--json", "--no-build"]);
    if let Some(v) = variant {
        c.args(["--variant", v]);
    }
    let out: Output =
        c.envs(env.iter().map(|(k, v)| (*k, v))).output().expect("lab check");
    common::assert_no_leftovers(&tag, Duration::from_secs(5));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let verdict = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "verdict")
        .unwrap_or(Value::Null);
    Check { code: out.status.code(), verdict, stdout }
}

/// The four runs of one exercise; what went against expectation.
fn judge(e: &Value) -> Vec<String> {
    let name = e["name"].as_str().expect("name");
    let wrong_fails = e["wrong_fails"].as_str().expect("wrong_fails");
    let mut bad = Vec::new();
    let given = check(name, None, &[]);
    if given.code != Some(3) {
        bad.push(format!(
            "{name} as given: exit {:?}, not 3\n{}",
            given.code, given.stdout
        ));
    }
    let saved = scratch().join(format!("{name}.out"));
    let solution =
        check(name, Some("solution"), &[("PROCLAB_SAVE_OUTPUT", saved.clone())]);
    if solution.code != Some(0) || solution.verdict["outcome"] != "verified" {
        bad.push(format!(
            "{name} solution: exit {:?}\n{}",
            solution.code, solution.stdout
        ));
    }
    let wrong = check(name, Some("wrong"), &[]);
    if wrong.code != Some(3) || !wrong.failed().iter().any(|f| f == wrong_fails) {
        bad.push(format!(
            "{name} wrong solution: exit {:?}, failed {:?} (must include {wrong_fails})\n{}",
            wrong.code,
            wrong.failed(),
            wrong.stdout
        ));
    }
    let fake = check(name, Some("fake"), &[("PROCLAB_FAKE_OUTPUT", saved)]);
    if fake.code != Some(3) {
        bad.push(format!(
            "{name} fake (the solution's output, no work): exit {:?}\n{}",
            fake.code, fake.stdout
        ));
    }
    eprintln!(
        "{name}: given {:?}, solution {:?}, wrong {:?} {:?}, fake {:?}",
        given.failed(),
        solution.code,
        wrong.failed(),
        wrong.code,
        fake.failed()
    );
    bad
}

#[test]
fn each_exercise_fails_as_given_passes_solved_and_catches_wrong_and_fake() {
    build();
    let only = std::env::var("PROCLAB_EXERCISE_ONLY").ok(); // e.g. pipe-eof,shm-counter
    let todo: Vec<&Value> = exercises()
        .iter()
        .filter(|e| {
            only.as_deref().is_none_or(|o| o.split(',').any(|n| e["name"] == n))
        })
        .collect();
    let queue = Mutex::new(todo);
    let bad = Mutex::new(Vec::new());
    // Three at a time: the checks are generous with time, and the machine is small.
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| loop {
                let Some(e) = queue.lock().unwrap().pop() else { return };
                let found = judge(e);
                bad.lock().unwrap().extend(found);
            });
        }
    });
    let bad = bad.into_inner().unwrap();
    assert!(bad.is_empty(), "{}", bad.join("\n\n"));
}

/// Puts a file back as it was when dropped, even if the test panics.
struct Restore(PathBuf, String);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, &self.1);
    }
}

#[test]
fn a_compile_error_is_could_not_run_with_the_first_error_and_bad_names_exit_2() {
    build();
    let path = root().join("exercises/fork_exit_status.rs");
    let original = std::fs::read_to_string(&path).expect("read");
    let _restore = Restore(path.clone(), original.clone());
    let broken =
        original.replace("let mut primes = 0;", "let mut primes = undefined_name;");
    std::fs::write(&path, broken).expect("write");
    let tag = common::new_tag("compile");
    let out = lab(&tag)
        .args(["check", "fork-exit-status", "--json"])
        .output()
        .expect("lab check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let v: Value =
        serde_json::from_str(text.lines().last().unwrap_or("")).expect("a verdict");
    assert_eq!(v["outcome"], "could_not_run");
    let error = v["error"].as_str().unwrap_or("");
    assert!(
        error.contains("undefined_name") && error.contains("fork_exit_status.rs"),
        "{error}"
    );
    drop(_restore);
    let unknown =
        lab(&tag).args(["check", "no-such-exercise"]).output().expect("lab check");
    assert_eq!(unknown.status.code(), Some(2));
    let hint = lab(&tag).args(["hint", "pipe-eof"]).output().expect("lab hint");
    assert!(
        hint.status.success()
            && String::from_utf8_lossy(&hint.stdout).contains("Hint:")
    );
}

/// Start `lab ARGS` with its stdout piped; the child and its tag.
fn start(args: &[&str], what: &str) -> (std::process::Child, String) {
    let tag = common::new_tag(what);
    let child =
        lab(&tag).args(args).stdout(Stdio::piped()).spawn().expect("start lab");
    (child, tag)
}

#[test]
fn a_sigkilled_check_leaves_nothing_alive_a_second_later() {
    build();
    // pgroup-stop as given leaves two workers running, adopted by the observer.
    let (mut child, tag) =
        start(&["check", "pgroup-stop", "--json", "--no-build"], "sigkill");
    let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let family =
        lines.map_while(Result::ok).find(|l| l.contains("\"kind\":\"family\""));
    assert!(family.is_some(), "the check reached its family observation");
    assert!(
        common::tagged_processes(&tag).len() >= 3,
        "the workers and the observer are alive"
    );
    // SAFETY: kill has no memory-safety preconditions; this is the test's own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(1);
    while !common::tagged_processes(&tag).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let left = common::tagged_processes(&tag);
    common::assert_no_leftovers(&tag, Duration::from_secs(3));
    assert!(left.is_empty(), "alive 1 s after lab check was SIGKILLed: {left:?}");
}

#[test]
fn watch_checks_again_when_the_exercise_is_saved() {
    build();
    let path = root().join("exercises/orphan_subreaper.rs");
    let text = std::fs::read_to_string(&path).expect("read");
    let (mut child, tag) = start(&["watch", "orphan-subreaper"], "watch");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut verdicts = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while verdicts < 2 && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if line.starts_with("verdict:") {
            verdicts += 1;
        }
        if line.contains("waiting for you to save") {
            std::fs::write(&path, &text).expect("save the exercise again");
        }
    }
    // SAFETY: as above: the test's own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let _ = child.wait();
    common::assert_no_leftovers(&tag, Duration::from_secs(3));
    assert_eq!(verdicts, 2, "one check at the start, one after the save");
}

#[test]
fn the_list_the_bins_the_files_and_the_book_agree() {
    let cargo = read("Cargo.toml");
    let (solutions, wrongs) =
        (read("exercises/solutions/main.rs"), read("exercises/wrong/main.rs"));
    let list = exercises();
    assert!(list.len() >= 20, "{} exercises, at least 20 wanted", list.len());
    let mut labs_seen: Vec<u64> =
        list.iter().filter_map(|e| e["lab"].as_u64()).collect();
    labs_seen.dedup();
    for n in 1..=15 {
        assert!(labs_seen.contains(&n), "lab {n} has no exercise");
    }
    for e in list {
        let (name, file) =
            (e["name"].as_str().unwrap(), e["file"].as_str().unwrap());
        let module = file.trim_end_matches(".rs");
        let bin = format!("name = \"ex-{name}\"\npath = \"exercises/{file}\"\nbench = false\ntest = false\nrequired-features = [\"exercises\"]");
        assert!(cargo.contains(&bin), "Cargo.toml lacks [[bin]] {bin}");
        assert!(
            read(&format!("exercises/{file}")).contains("// TODO"),
            "{file} has no TODO"
        );
        for (dir, list) in [("solutions", &solutions), ("wrong", &wrongs)] {
            let text = read(&format!("exercises/{dir}/{file}"));
            assert!(
                !text.contains("// TODO"),
                "exercises/{dir}/{file} still has its TODO"
            );
            assert!(
                list.contains(&format!("    {module},\n")),
                "exercises/{dir}/main.rs lacks {module}"
            );
        }
        let wrong = read(&format!("exercises/wrong/{file}"));
        let fails = e["wrong_fails"].as_str().unwrap();
        assert!(
            wrong.contains(&format!("`{fails}`")),
            "exercises/wrong/{file} does not say that `{fails}` fails"
        );
        let chapter = std::fs::read_dir(root().join("book/src"))
            .unwrap()
            .flatten()
            .map(|d| d.path())
            .find(|p| {
                p.file_name().is_some_and(|f| {
                    f.to_string_lossy().starts_with(&format!(
                        "{:02}-",
                        e["lab"].as_u64().unwrap_or(0)
                    ))
                })
            })
            .expect("the chapter");
        let text = std::fs::read_to_string(&chapter).unwrap();
        assert!(
            text.contains(&format!("lab -- check {name}")),
            "{} does not link `lab check {name}`",
            chapter.display()
        );
    }
    let intro = read("book/src/introduction.md");
    for cmd in ["lab -- check", "lab -- hint", "lab -- watch", "lab -- exercises"] {
        assert!(intro.contains(cmd), "the introduction does not explain `{cmd}`");
    }
}
