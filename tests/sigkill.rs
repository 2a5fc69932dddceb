//! Nothing outlives a SIGKILLed lab: killed right after each of its sections starts, and
//! a moment into each, every lab leaves no process alive one second later.
mod common;

#[path = "../labs/lab/roster.rs"]
#[allow(dead_code)]
mod roster;

use std::time::Duration;

#[test]
fn no_descendant_outlives_a_sigkilled_lab_by_a_second() {
    let only = std::env::var("PROCLAB_SIGKILL_ONLY").ok(); // e.g. PROCLAB_SIGKILL_ONLY=pipe
    for l in roster::LABS.iter().filter(|l| {
        only.as_deref().is_none_or(|o| o.split(',').any(|n| n == l.name))
    }) {
        // How many sections a run has: from its recorded run (tests/book.rs keeps that
        // the shape of a fresh one), else from a run.
        let recorded = format!(
            "{}/book/src/measured/{}.events.jsonl",
            env!("CARGO_MANIFEST_DIR"),
            l.name
        );
        let sections = match std::fs::read_to_string(&recorded) {
            Ok(events) => events
                .lines()
                .filter(|e| e.contains(r#""event":"section""#))
                .count(),
            Err(_) => common::run_json(l.name, l.args)
                .events
                .iter()
                .filter(|e| e["event"] == "section")
                .count(),
        };
        assert!(sections > 0, "{} emits no section events", l.name);
        // Each kill is a run of its own (its own tag): four at a time, since most of a
        // run is spent waiting for the lab to reach the section.
        let kills: Vec<(usize, Duration)> = (1..=sections)
            .flat_map(|k| [(k, Duration::ZERO), (k, Duration::from_millis(300))])
            .collect();
        for chunk in kills.chunks(4) {
            std::thread::scope(|s| {
                for &(k, after) in chunk {
                    s.spawn(move || {
                        eprintln!(
                            "{}: SIGKILL {after:?} into section {k} of {sections}",
                            l.name
                        );
                        let section =
                            |e: &serde_json::Value| e["event"] == "section";
                        common::sigkill_at(l.name, l.args, k, section, after);
                    });
                }
            });
        }
    }
}
