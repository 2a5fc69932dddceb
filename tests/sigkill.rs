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
        let sections = common::run_json(l.name, l.args)
            .events
            .iter()
            .filter(|e| e["event"] == "section")
            .count();
        assert!(sections > 0, "{} emits no section events", l.name);
        for k in 1..=sections {
            for after in [Duration::ZERO, Duration::from_millis(300)] {
                eprintln!(
                    "{}: SIGKILL {after:?} into section {k} of {sections}",
                    l.name
                );
                common::sigkill_at(
                    l.name,
                    l.args,
                    k,
                    |e| e["event"] == "section",
                    after,
                );
            }
        }
    }
}
