//! What the manager says on its `system` lines, and how the lab reads them back: one
//! type, written by the manager with Display and parsed by the lab with `parse`, so
//! the two can never disagree. Statuses read as TLPI prints them (`exited, status 70`,
//! `killed by SIGKILL`), which is what `proclab::Status` displays.

use std::fmt;

/// How a process ended, as `waitpid` told the manager.
#[derive(Clone, Debug, PartialEq)]
pub enum End {
    Exited(i32),
    Killed(String),
}

impl End {
    /// The exit code a shell would show for it: the code, or 128 + the signal number.
    pub fn shell_code(&self) -> i32 {
        match self {
            End::Exited(c) => *c,
            End::Killed(sig) => {
                128 + sig
                    .parse::<nix::sys::signal::Signal>()
                    .map_or(0, |s| s as i32)
            }
        }
    }
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Exited(c) => write!(f, "exited, status {c}"),
            End::Killed(s) => write!(f, "killed by {s}"),
        }
    }
}

impl serde::Serialize for End {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One `system` line of the manager.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Started { name: String, pid: i32, port: u16 },
    Ended { name: String, pid: i32, end: End },
    Restarting { name: String, delay_ms: u64, start: u32, limit: u32 },
    GaveUp { name: String, starts: u32 },
    Adopted { name: String, pid: i32 },
    Stopping { why: String, count: usize },
    Sent { signal: String, name: String, pid: i32, after_ms: u64 },
    Exiting { code: i32 },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Started { name, pid, port } => {
                write!(f, "{name} started: pid {pid}, PORT {port}")
            }
            Event::Ended { name, pid, end } => write!(f, "{name} (pid {pid}) {end}"),
            Event::Restarting { name, delay_ms, start, limit } => write!(
                f,
                "{name} restarts in {delay_ms} ms (start {start} of at most {limit} in 10 s)"
            ),
            Event::GaveUp { name, starts } => {
                write!(f, "{name} gave up: {starts} starts in 10 s (the start limit)")
            }
            Event::Adopted { name, pid } => {
                write!(f, "{name} adopted pid {pid}: an orphan whose PS is {name}")
            }
            Event::Stopping { why, count } => {
                write!(f, "stopping ({why}): SIGTERM to {count} processes")
            }
            Event::Sent { signal, name, pid, after_ms: 0 } => {
                write!(f, "sent {signal} to {name} (pid {pid})")
            }
            Event::Sent { signal, name, pid, after_ms } => {
                write!(f, "sent {signal} to {name} (pid {pid}) after {after_ms} ms")
            }
            Event::Exiting { code } => write!(f, "exiting with status {code}"),
        }
    }
}

/// The number after `key ` in `text` (`pid 4321,` gives 4321).
fn num<T: std::str::FromStr>(text: &str, key: &str) -> Option<T> {
    let at = text.find(key)? + key.len();
    let digits: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

/// Read a `system` line's text back into its event (None for any other text).
pub fn parse(text: &str) -> Option<Event> {
    let word = |i: usize| text.split(' ').nth(i).map(String::from);
    if let Some(code) = text.strip_prefix("exiting with status ") {
        return Some(Event::Exiting { code: code.parse().ok()? });
    }
    if let Some(rest) = text.strip_prefix("stopping (") {
        let (why, tail) = rest.split_once("): SIGTERM to ")?;
        let count = num(tail, "")?;
        return Some(Event::Stopping { why: why.into(), count });
    }
    if text.starts_with("sent ") {
        return Some(Event::Sent {
            signal: word(1)?,
            name: word(3)?,
            pid: num(text, "(pid ")?,
            after_ms: num(text, "after ").unwrap_or(0),
        });
    }
    let name = word(0)?;
    let rest = &text[name.len()..];
    if rest.starts_with(" started: ") {
        return Some(Event::Started {
            name,
            pid: num(rest, "pid ")?,
            port: num(rest, "PORT ")?,
        });
    }
    if rest.starts_with(" restarts in ") {
        let (delay_ms, start, limit) =
            (num(rest, "in ")?, num(rest, "start ")?, num(rest, "at most ")?);
        return Some(Event::Restarting { name, delay_ms, start, limit });
    }
    if rest.starts_with(" gave up: ") {
        return Some(Event::GaveUp { name, starts: num(rest, "up: ")? });
    }
    if rest.starts_with(" adopted pid ") {
        return Some(Event::Adopted { name, pid: num(rest, "pid ")? });
    }
    let pid = num(rest, " (pid ")?;
    let (_, how) = rest.split_once(") ")?;
    let end = if let Some(c) = how.strip_prefix("exited, status ") {
        End::Exited(c.parse().ok()?)
    } else {
        End::Killed(how.strip_prefix("killed by ")?.to_string())
    };
    Some(Event::Ended { name, pid, end })
}

/// One line of the manager's output.
#[derive(Clone, Debug)]
pub enum Line {
    System(Event),
    /// `name` wrote `text` (on stderr when `err`).
    Process {
        name: String,
        err: bool,
        text: String,
    },
    /// Not of the manager's shape (a torn line).
    Other,
}

/// `  0.123 web.1    | text` back into its parts.
pub fn parse_line(line: &str) -> Line {
    let other = || Line::Other;
    let mut it = line.trim_start().splitn(2, ' ');
    let (Some(_t), Some(rest)) = (it.next(), it.next()) else { return other() };
    let Some((name, rest)) = rest.split_once(' ') else { return other() };
    let rest = rest.trim_start();
    let (mark, text) = (rest.chars().next(), rest.get(2..).unwrap_or(""));
    match (name, mark) {
        ("system", Some('|')) => parse(text).map_or_else(other, Line::System),
        (_, Some(m @ ('|' | '!'))) => {
            Line::Process { name: name.into(), err: m == '!', text: text.into() }
        }
        _ => other(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_reads_back_as_itself() {
        let n = || "worker.2".to_string();
        let all = [
            Event::Started { name: n(), pid: 4321, port: 5101 },
            Event::Ended { name: n(), pid: 4321, end: End::Exited(70) },
            Event::Ended {
                name: n(),
                pid: 4321,
                end: End::Killed("SIGKILL".into()),
            },
            Event::Restarting { name: n(), delay_ms: 200, start: 2, limit: 4 },
            Event::GaveUp { name: n(), starts: 4 },
            Event::Adopted { name: "daemon.1".into(), pid: 99 },
            Event::Stopping {
                why: "worker.2 (pid 4321) exited, status 70".into(),
                count: 3,
            },
            Event::Sent {
                signal: "SIGKILL".into(),
                name: n(),
                pid: 7,
                after_ms: 1000,
            },
            Event::Sent {
                signal: "SIGTERM".into(),
                name: n(),
                pid: 7,
                after_ms: 0,
            },
            Event::Exiting { code: 137 },
        ];
        for e in all {
            assert_eq!(parse(&e.to_string()).as_ref(), Some(&e), "{e}");
        }
        assert_eq!(parse("web.1 | GET / from 127.0.0.1"), None);
    }

    #[test]
    fn output_lines_read_back_into_their_parts() {
        let l = parse_line("  0.123 web.1      | GET / from 127.0.0.1:4000");
        assert!(matches!(l, Line::Process { ref name, err: false, ref text }
            if name == "web.1" && text == "GET / from 127.0.0.1:4000"));
        let l = parse_line("  1.000 worker.2   ! job crash: cannot handle it");
        assert!(matches!(l, Line::Process { err: true, .. }));
        let l = parse_line("  0.001 system     | exiting with status 70");
        assert!(matches!(l, Line::System(Event::Exiting { code: 70 })));
        assert!(matches!(parse_line("abcdef torn"), Line::Other));
    }

    #[test]
    fn a_signal_death_is_128_plus_the_signal_for_a_shell() {
        assert_eq!(End::Killed("SIGKILL".into()).shell_code(), 137);
        assert_eq!(End::Exited(70).shell_code(), 70);
        assert_eq!(End::Killed("SIGTERM".into()).to_string(), "killed by SIGTERM");
    }
}
