//! `--timeline` draws the run as text lanes at its end, without changing its verdict and
//! without entering `--json`; `PROCLAB_EVENTS` receives the JSON events whatever the output.
mod common;

use std::process::{Command, Stdio};

/// The processes a run's human output names in its lanes: `4232 child  fork---Z...`.
fn lanes(out: &str) -> Vec<String> {
    let start = out.find("== timeline of ").expect("a timeline");
    out[start..]
        .lines()
        .filter(|l| {
            l.split_whitespace().next().is_some_and(|w| w.parse::<i32>().is_ok())
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn the_timeline_comes_before_the_verdict_and_changes_nothing() {
    for (name, args) in [("zombie", &["--linger-ms", "0"][..]), ("orphan", &[][..])]
    {
        let with: Vec<&str> = args.iter().copied().chain(["--timeline"]).collect();
        let (code, out) = common::run_human(name, &with);
        assert_eq!(code, Some(0), "{name} --timeline:\n{out}");
        let at = out.find("== timeline of ").expect("a timeline");
        let verdict = out.find("verdict: VERIFIED").expect("a verdict");
        assert!(at < verdict, "the timeline comes before the verdict:\n{out}");
        let drawn = lanes(&out);
        assert!(drawn.iter().any(|l| l.contains(" lab ")), "{out}");
        assert!(drawn.iter().any(|l| l.contains("reaped: exit")), "{out}");
        // The pids drawn are those the run printed.
        let before = &out[..at];
        for l in &drawn {
            let pid = l.split_whitespace().next().unwrap();
            assert!(before.contains(pid), "{pid} drawn but not printed:\n{out}");
        }
        // With --json the lanes stay out: JSON lines only, the same verdict.
        let run = common::run_json(name, &with);
        run.assert_verified();
    }
    let (_, zombie) =
        common::run_human("zombie", &["--linger-ms", "0", "--timeline"]);
    let child = lanes(&zombie)
        .into_iter()
        .find(|l| l.contains("child") && l.contains("kill -KILL"))
        .expect("the zombie SIGKILL was sent to");
    assert!(child.contains('Z'), "a zombie when SIGKILL came: {child}");
}

#[test]
fn the_events_file_holds_the_json_events_of_the_run() {
    let dir =
        std::env::temp_dir().join(format!("proclab-events-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("fork.jsonl");
    let out = Command::new(common::bin("fork"))
        .args(["--json", "--linger-ms", "0"])
        .env(proclab::report::EVENTS_VAR, &file)
        .env(common::TAG_VAR, common::new_tag("fork"))
        .stdin(Stdio::null())
        .output()
        .expect("run fork");
    assert_eq!(out.status.code(), Some(0));
    let written = std::fs::read_to_string(&file).expect("the events file");
    assert_eq!(written, String::from_utf8_lossy(&out.stdout), "the same lines");
    // Without --json: the human output, and the events of the same run in the file.
    let human = Command::new(common::bin("fork"))
        .args(["--linger-ms", "0"])
        .env(proclab::report::EVENTS_VAR, &file)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run fork");
    let text = String::from_utf8_lossy(&human.stdout);
    let events = std::fs::read_to_string(&file).unwrap();
    let mut seen = 0;
    for e in events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
    {
        if let Some(t) = e["text"].as_str() {
            assert!(text.contains(t), "{t:?} not printed:\n{text}");
            seen += 1;
        }
    }
    assert!(seen >= 4, "{events}");
    assert!(events.lines().last().unwrap().contains("\"verdict\""));
    let _ = std::fs::remove_dir_all(&dir);
}
