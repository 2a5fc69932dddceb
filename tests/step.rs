//! `--step` never changes a verdict: every lab, run on a pseudo-terminal by a learner who
//! presses Enter 1.5 s after each prompt, still verifies. Paused time never counts
//! against a deadline. The labs run a few at a time (they mostly wait at prompts).
mod common;

#[path = "../labs/lab/roster.rs"]
#[allow(dead_code)]
mod roster;

use std::time::Duration;

fn delay() -> Duration {
    let ms =
        std::env::var("PROCLAB_STEP_DELAY_MS").ok().and_then(|v| v.parse().ok());
    Duration::from_millis(ms.unwrap_or(1500))
}

#[test]
fn every_lab_verifies_with_step_on_a_terminal() {
    let only = std::env::var("PROCLAB_STEP_ONLY").ok(); // e.g. PROCLAB_STEP_ONLY=zombie
    let labs: Vec<_> = roster::LABS
        .iter()
        .filter(|l| {
            only.as_deref().is_none_or(|o| o.split(',').any(|n| n == l.name))
        })
        .collect();
    let failures = std::sync::Mutex::new(Vec::new());
    // Four at a time, from a queue: the later labs, the longest, first.
    let queue = std::sync::Mutex::new(labs.into_iter().rev());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    // The lock is let go before the run (not held through the loop).
                    let next = queue.lock().unwrap().next();
                    let Some(l) = next else { break };
                    let run = common::run_stepping(
                        l.name,
                        l.args,
                        delay(),
                        Duration::from_secs(600),
                    );
                    if run.code != Some(0) || run.prompts == 0 {
                        failures.lock().unwrap().push(format!(
                            "{}: exit {:?} after {} prompts:\n{}",
                            l.name, run.code, run.prompts, run.output
                        ));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "with --step:\n{}", failures.join("\n\n"));
}
