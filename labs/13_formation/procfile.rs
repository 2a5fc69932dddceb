//! The Procfile (Foreman's format), the formation (`web=2,worker=3`) and the PORT rule:
//! what the manager runs, how many of each, and where each one listens.

/// The lab's own Procfile, built into the binary (the manager reads a copy of it).
pub const PROCFILE: &str = include_str!("Procfile");

/// One process type: `web: $FORMATION web`.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub name: String,
    pub command: String,
}

// ANCHOR: parse
/// Foreman's rule: a line that matches `^([A-Za-z0-9_-]+):\s*(.+)$` is an
/// entry; every other line (a comment, a blank) is ignored.
pub fn parse(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else { continue };
        let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        let named = !name.is_empty() && name.chars().all(ok);
        let command = rest.trim_start();
        if named && !command.is_empty() {
            out.push(Entry { name: name.into(), command: command.into() });
        }
    }
    out
}

/// Foreman's `port_for`: the base port, plus 100 per type before this one in
/// the Procfile, plus the instance number less one: web.1 5000, worker.2 5101.
pub fn port_for(base: u16, type_index: usize, instance: usize) -> u16 {
    base + 100 * type_index as u16 + (instance as u16 - 1)
}
// ANCHOR_END: parse

/// `web=2,worker=3` against the Procfile's types: (type index, count) in Procfile
/// order. Types not named run 0 times (Foreman's default is `all=1`; this lab always
/// names what it runs). An error names the bad part.
pub fn formation(
    spec: &str,
    types: &[Entry],
) -> Result<Vec<(usize, usize)>, String> {
    let mut counts = vec![0usize; types.len()];
    for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, n) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not NAME=COUNT"))?;
        let i = types
            .iter()
            .position(|t| t.name == name.trim())
            .ok_or_else(|| format!("no process type {name:?} in the Procfile"))?;
        counts[i] = n
            .trim()
            .parse()
            .ok()
            .filter(|n| (0..=32).contains(n))
            .ok_or_else(|| format!("{pair:?}: the count must be 0 to 32"))?;
    }
    let out: Vec<(usize, usize)> =
        counts.into_iter().enumerate().filter(|&(_, n)| n > 0).collect();
    if out.is_empty() {
        return Err(format!("{spec:?} runs no process"));
    }
    Ok(out)
}

/// Expand `$NAME` and `${NAME}` in `command` from `env` (Foreman's
/// `expanded_command`), then split it on white space. No shell runs it: the pid the
/// manager gets is the program's own.
pub fn argv(command: &str, env: &[(String, String)]) -> Vec<String> {
    let lookup = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut out = String::new();
    let mut rest = command;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = if let Some(inner) = after.strip_prefix('{') {
            let end = inner.find('}').unwrap_or(inner.len());
            (&inner[..end], inner.get(end + 1..).unwrap_or(""))
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        out.push_str(&lookup(name));
        rest = tail;
    }
    out.push_str(rest);
    out.split_whitespace().map(String::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreman_lines_only() {
        let text =
            "# a comment\nweb: run web --port $PORT\n\nbad line\n-x_9:  go\n:no\n";
        let e = parse(text);
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0],
            Entry { name: "web".into(), command: "run web --port $PORT".into() }
        );
        assert_eq!(e[1].name, "-x_9");
        assert_eq!(e[1].command, "go");
        assert_eq!(parse("we b: x\nweb:\n"), vec![]);
    }

    #[test]
    fn the_lab_procfile_has_its_six_types() {
        let names: Vec<String> =
            parse(PROCFILE).into_iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            ["web", "worker", "chatter", "crasher", "stubborn", "daemon"]
        );
    }

    #[test]
    fn ports_follow_foreman() {
        assert_eq!(port_for(5000, 0, 1), 5000);
        assert_eq!(port_for(5000, 0, 2), 5001);
        assert_eq!(port_for(5000, 1, 2), 5101);
    }

    #[test]
    fn formations_are_checked_against_the_procfile() {
        let types = parse(PROCFILE);
        assert_eq!(formation("web=2,worker=3", &types), Ok(vec![(0, 2), (1, 3)]));
        assert_eq!(
            formation(" worker=1 , web=1", &types),
            Ok(vec![(0, 1), (1, 1)])
        );
        assert!(formation("db=1", &types).is_err());
        assert!(formation("web", &types).is_err());
        assert!(formation("web=33", &types).is_err());
        assert!(formation("web=0", &types).is_err());
    }

    #[test]
    fn commands_expand_and_split() {
        let env = [
            ("FORMATION".to_string(), "/bin/f".to_string()),
            ("PORT".into(), "5000".into()),
        ];
        assert_eq!(argv("$FORMATION web", &env), ["/bin/f", "web"]);
        assert_eq!(
            argv("x --port=${PORT}  $NOPE.", &env),
            ["x", "--port=5000", "."]
        );
    }
}
