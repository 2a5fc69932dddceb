//! Observations, checks and the verdict.
//!
//! A lab records what it saw with [`Lab::observe`] (a fact from the kernel's accounting) and
//! what that proves with [`Lab::check`]; [`Lab::finish`] prints the verdict and exits:
//! 0 when every check held, 3 when one did not ("not observed on this run"). With `--json`
//! every observation, check and the verdict is one JSON object per line, and nothing else
//! is printed on stdout.

use crate::{cleanup, narrate, EXIT_NOT_OBSERVED, EXIT_VERIFIED};
use serde_json::{json, Map, Value};
use std::fmt::Display;
use std::io::{BufRead, IsTerminal, Write};

/// The flags every lab takes. Flatten it into the lab's own clap parser:
/// `#[command(flatten)] common: Common`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Common {
    /// Print JSON lines only: every observation and check, then the verdict.
    #[arg(long)]
    pub json: bool,
    /// Pause at each observation until Enter (only when stdin is a terminal), to look at
    /// the processes from another terminal with ps or /proc.
    #[arg(long)]
    pub step: bool,
}

/// One lab run: its observations, its checks and, at the end, its verdict.
pub struct Lab {
    name: &'static str,
    json: bool,
    step: bool,
    checks: Vec<(String, bool)>,
    _guard: cleanup::Guard,
}

impl Lab {
    /// Start the lab `name`: this process becomes the "parent" of the narration, and the
    /// cleanup handlers (SIGINT, SIGTERM, panic) are installed.
    pub fn start(name: &'static str, common: &Common) -> Lab {
        narrate::set_owner_here();
        narrate::set_quiet(common.json);
        narrate::set_colour(!common.json && narrate::colour_wanted());
        cleanup::install();
        Lab {
            name,
            json: common.json,
            step: common.step && std::io::stdin().is_terminal() && !common.json,
            checks: Vec::new(),
            _guard: cleanup::Guard,
        }
    }

    /// The lab's name, as in `cargo run --bin NAME`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// True with `--json`.
    pub fn json(&self) -> bool {
        self.json
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if narrate::colour() {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn emit(&self, mut obj: Map<String, Value>, event: &str) {
        obj.insert("event".into(), event.into());
        obj.insert("lab".into(), self.name.into());
        let line = Value::Object(obj).to_string();
        narrate::write_all_fd(1, format!("{line}\n").as_bytes());
    }

    /// A heading for the next part of the lab (human output only).
    pub fn section(&self, title: &str) {
        if !self.json {
            let t = self.paint("1", &format!("== {title} =="));
            narrate::write_all_fd(1, format!("\n{t}\n").as_bytes());
        }
    }

    /// Record a fact the lab observed. `fields` must be a JSON object (`json!({"pid": 42})`);
    /// `text` is the human line.
    pub fn observe(&mut self, kind: &str, fields: Value, text: impl Display) {
        if self.json {
            let mut obj = match fields {
                Value::Object(m) => m,
                Value::Null => Map::new(),
                other => {
                    let mut m = Map::new();
                    m.insert("value".into(), other);
                    m
                }
            };
            obj.insert("kind".into(), kind.into());
            obj.insert("text".into(), text.to_string().into());
            self.emit(obj, "observation");
        } else {
            let tag = self.paint("33", "observed:");
            narrate::write_all_fd(1, format!("  {tag} {text}\n").as_bytes());
        }
        self.pause();
    }

    /// Record whether a claim held, judged from what was observed. Returns `ok`.
    pub fn check(&mut self, name: &str, ok: bool, text: impl Display) -> bool {
        if self.json {
            let mut obj = Map::new();
            obj.insert("name".into(), name.into());
            obj.insert("ok".into(), ok.into());
            obj.insert("text".into(), text.to_string().into());
            self.emit(obj, "check");
        } else {
            let tag = if ok {
                self.paint("32", "✓ verified:")
            } else {
                self.paint("31", "✗ NOT observed:")
            };
            narrate::write_all_fd(1, format!("  {tag} {text}\n").as_bytes());
        }
        self.checks.push((name.to_string(), ok));
        ok
    }

    /// Print a table (human output), or record it as one observation of kind `kind` with
    /// `headers` and `rows` (with `--json`).
    pub fn table(&mut self, kind: &str, headers: &[&str], rows: &[Vec<String>]) {
        if self.json {
            let mut obj = Map::new();
            obj.insert("kind".into(), kind.into());
            obj.insert("headers".into(), json!(headers));
            obj.insert("rows".into(), json!(rows));
            self.emit(obj, "observation");
            return;
        }
        let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
        for row in rows {
            for (i, cell) in row.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(cell.chars().count());
                }
            }
        }
        let fmt_row = |cells: Vec<&str>| {
            let mut s = String::from(" ");
            for (i, c) in cells.iter().enumerate() {
                let w = widths.get(i).copied().unwrap_or(0);
                // Numbers right-aligned, words left-aligned.
                if i > 0 && c.chars().next().is_some_and(|ch| ch.is_ascii_digit()) {
                    s.push_str(&format!(" {c:>w$}"));
                } else {
                    s.push_str(&format!(" {c:<w$}"));
                }
            }
            s.trim_end().to_string() + "\n"
        };
        let mut out = fmt_row(headers.to_vec());
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out += &fmt_row(rule.iter().map(|s| s.as_str()).collect());
        for row in rows {
            out += &fmt_row(row.iter().map(|s| s.as_str()).collect());
        }
        narrate::write_all_fd(1, out.as_bytes());
    }

    /// Show the processes below `root` (pid, ppid, state, command) like `ps -f --forest`.
    pub fn show_tree(&mut self, root: nix::unistd::Pid) {
        let rows = crate::procfacts::tree(root.as_raw());
        if self.json {
            let rows: Vec<Value> = rows
                .iter()
                .map(|r| json!({"pid": r.pid, "ppid": r.ppid, "state": r.state.to_string(), "cmd": r.cmd, "depth": r.depth}))
                .collect();
            let mut obj = Map::new();
            obj.insert("kind".into(), "tree".into());
            obj.insert("root".into(), root.as_raw().into());
            obj.insert("processes".into(), rows.into());
            self.emit(obj, "observation");
            return;
        }
        let mut out = String::from("      PID    PPID S  CMD\n");
        for r in rows {
            let indent = if r.depth == 0 {
                String::new()
            } else {
                "    ".repeat(r.depth - 1) + " \\_ "
            };
            out += &format!("  {:>7} {:>7} {}  {indent}{}\n", r.pid, r.ppid, r.state, r.cmd);
        }
        narrate::write_all_fd(1, out.as_bytes());
    }

    /// With `--step` on a terminal: wait for Enter, so the learner can look at /proc.
    pub fn pause(&self) {
        if self.step {
            let hint = self.paint(
                "2",
                "  [--step] inspect with ps or /proc in another terminal, then press Enter ",
            );
            narrate::write_all_fd(1, hint.as_bytes());
            let mut s = String::new();
            let _ = std::io::stdin().lock().read_line(&mut s);
        }
    }

    /// True if every check so far held (and there was at least one).
    pub fn all_ok(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|(_, ok)| *ok)
    }

    /// Print the verdict on `claim` and exit: 0 if every check held, 3 if any did not (or
    /// none was made). Children still owned are killed and reaped first.
    pub fn finish(self, claim: &str) -> ! {
        cleanup::cleanup();
        let ok = self.all_ok();
        let failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(n, _)| n.as_str())
            .collect();
        if self.json {
            let mut obj = Map::new();
            obj.insert("ok".into(), ok.into());
            obj.insert("claim".into(), claim.into());
            obj.insert("checks".into(), self.checks.len().into());
            obj.insert("failed".into(), json!(failed));
            self.emit(obj, "verdict");
        } else {
            let n = self.checks.len();
            let line = if ok {
                self.paint("1;32", &format!("verdict: VERIFIED ({n} of {n} checks): {claim}"))
            } else if n == 0 {
                self.paint(
                    "1;31",
                    &format!("verdict: NOT OBSERVED on this run (no check was made): {claim}"),
                )
            } else {
                self.paint(
                    "1;31",
                    &format!(
                        "verdict: NOT OBSERVED on this run ({} of {n} checks failed: {}): {claim}",
                        failed.len(),
                        failed.join(", ")
                    ),
                )
            };
            narrate::write_all_fd(1, format!("\n{line}\n").as_bytes());
        }
        let _ = std::io::stdout().flush();
        std::process::exit(if ok { EXIT_VERIFIED } else { EXIT_NOT_OBSERVED })
    }
}
