//! `lab record`: run each lab from a release build and write its output, with the command,
//! date, kernel and CPU, to `book/src/measured/NAME.txt`; the same run's events (the lab
//! writes them to the file `PROCLAB_EVENTS` names) to `NAME.events.jsonl`, and the picture
//! drawn from them to `NAME.svg`.

use crate::roster::LabInfo;
use crate::{bin_dir, header, run_env, svg, verdict_word};
use proclab::report::{timeline::Timeline, EVENTS_VAR};
use std::path::{Path, PathBuf};

pub fn record(labs: &[&'static LabInfo]) {
    let dir = bin_dir(true);
    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/measured");
    std::fs::create_dir_all(&out_dir).expect("create book/src/measured");
    let mut failed = 0;
    for l in labs {
        eprint!("recording {} ... ", l.name);
        let events_tmp = std::env::temp_dir().join(format!(
            "proclab-record-{}-{}.jsonl",
            l.name,
            std::process::id()
        ));
        let out = run_env(&dir, l, false, &[(EVENTS_VAR, &events_tmp)]);
        let events = std::fs::read_to_string(&events_tmp).unwrap_or_default();
        let _ = std::fs::remove_file(&events_tmp);
        if out.code != Some(0) {
            eprintln!(
                "{} (exit {:?}): not written",
                verdict_word(out.code),
                out.code
            );
            failed += 1;
            continue;
        }
        let mut command = format!("cargo run --release --bin {}", l.name);
        if !l.args.is_empty() {
            command += &format!(" -- {}", l.args.join(" "));
        }
        // The lab's pid, as its events name it, so that the picture's pids can be found.
        let pid = events
            .lines()
            .filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok())
            .find(|e| e["event"] == "section")
            .and_then(|e| e["pid"].as_i64())
            .unwrap_or(0);
        let text = header(&command, "lab record")
            + &format!("# the lab ran as pid {pid}; its picture: {}.svg\n", l.name)
            + &out.stdout;
        let path = out_dir.join(format!("{}.txt", l.name));
        std::fs::write(&path, text).expect("write measured output");
        std::fs::write(out_dir.join(format!("{}.events.jsonl", l.name)), &events)
            .expect("write the run's events");
        std::fs::write(out_dir.join(format!("{}.svg", l.name)), picture(&events))
            .expect("write the run's picture");
        eprintln!("ok ({:.1}s) -> {} and .svg", out.secs, path.display());
    }
    std::process::exit(if failed == 0 { 0 } else { 1 });
}

/// The picture drawn from a run's events (JSON lines).
pub fn picture(events: &str) -> String {
    let parsed: Vec<serde_json::Value> =
        events.lines().filter_map(|e| serde_json::from_str(e).ok()).collect();
    svg::render(&Timeline::from_events(&parsed))
}

/// `lab redraw`: the pictures again, from the events recorded beside each output.
pub fn redraw(labs: &[&'static LabInfo], dir: Option<PathBuf>) {
    let dir = dir.unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/measured")
    });
    let mut missing = 0;
    for l in labs {
        match std::fs::read_to_string(dir.join(format!("{}.events.jsonl", l.name)))
        {
            Ok(events) => {
                std::fs::write(
                    dir.join(format!("{}.svg", l.name)),
                    picture(&events),
                )
                .expect("write the picture");
                eprintln!("redrew {}.svg", l.name);
            }
            Err(e) => {
                eprintln!(
                    "{}: no recorded events ({e}): run `lab record {}`",
                    l.name, l.name
                );
                missing += 1;
            }
        }
    }
    std::process::exit(if missing == 0 { 0 } else { 1 });
}
