//! The command-line contract of every lab: `--help` explains every option and states the
//! range of every number it takes; `--json` prints JSON lines only and ends with a verdict
//! that carries its outcome; every observation and check names its section.
mod common;

#[path = "../labs/lab/roster.rs"]
#[allow(dead_code)]
mod roster;

use std::process::Command;

#[test]
fn help_states_every_numeric_range() {
    let mut missing = Vec::new();
    for l in roster::LABS {
        let out = Command::new(common::bin(l.name))
            .arg("--help")
            .output()
            .expect("run --help");
        assert_eq!(out.status.code(), Some(0), "{} --help", l.name);
        let help = String::from_utf8_lossy(&out.stdout);
        // clap prints `--name <NAME>` then the doc text, up to the next option.
        let mut blocks: Vec<String> = Vec::new();
        for line in help.lines() {
            if line.trim_start().starts_with('-') {
                blocks.push(line.to_string());
            } else if let Some(b) = blocks.last_mut() {
                b.push(' ');
                b.push_str(line.trim());
            }
        }
        for b in blocks {
            let takes_value = b.contains(" <");
            let numeric = b.contains("[default: ")
                && b.split("[default: ")
                    .nth(1)
                    .is_some_and(|d| d.starts_with(|c: char| c.is_ascii_digit()));
            let ranged = b.contains(" to ") || b.contains("possible values");
            if takes_value && numeric && !ranged {
                missing.push(format!("{}: {}", l.name, b.trim()));
            }
        }
    }
    assert!(missing.is_empty(), "options whose --help does not state their range (write e.g. \"1 to 100\"):\n{}", missing.join("\n"));
}

#[test]
fn json_events_carry_their_section_and_the_verdict_its_outcome() {
    // Every lab is tried, and every breach reported at the end.
    let mut bad = Vec::new();
    for l in roster::LABS {
        let run = common::run_json(l.name, l.args);
        let Some(v) = run.events.iter().rev().find(|e| e["event"] == "verdict")
        else {
            bad.push(format!("{}: no verdict", l.name));
            continue;
        };
        if !["verified", "not_observed"]
            .contains(&v["outcome"].as_str().unwrap_or(""))
        {
            bad.push(format!("{}: verdict outcome {v}", l.name));
        }
        if run.events.last() != Some(v) {
            bad.push(format!("{}: the verdict is not the last event", l.name));
        }
        for e in &run.events {
            if (e["event"] == "observation" || e["event"] == "check")
                && (!e["section"].is_string() || !e["t_us"].is_u64())
            {
                bad.push(format!("{}: no section or t_us on {e}", l.name));
                break;
            }
        }
        if run.stdout.contains("Exited(Pid(")
            || run.stdout.contains("Signaled(Pid(")
        {
            bad.push(format!(
                "{}: a wait status in Debug form; use proclab::Status",
                l.name
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
