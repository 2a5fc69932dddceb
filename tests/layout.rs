//! The reading shape (labs/README.md): a scenario reads in one short file; the book shows
//! code that fits its page; SAFETY comments sit on their own line above their `unsafe`;
//! the harness holds only what several labs use; no block of code is written twice.
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn lab_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    rs_files(&root().join("labs"), &mut v);
    v
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

/// The anchored blocks of a file: (anchor name, lines).
fn anchors(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut open: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("// ANCHOR: ") {
            open.push((name.to_string(), Vec::new()));
        } else if let Some(name) = t.strip_prefix("// ANCHOR_END: ") {
            if let Some(i) = open.iter().position(|(n, _)| n == name) {
                out.push(open.remove(i));
            }
        } else {
            for (_, lines) in open.iter_mut() {
                lines.push(line.to_string());
            }
        }
    }
    out
}

#[test]
fn lab_files_are_short_and_mains_shorter() {
    let mut bad = Vec::new();
    for p in lab_files() {
        let text = fs::read_to_string(&p).unwrap();
        let n = text.lines().count();
        let shown = text.contains("// ANCHOR: ");
        let limit = if shown { 250 } else { 300 };
        if n > limit {
            bad.push(format!("{}: {n} lines (at most {limit})", rel(&p)));
        }
        if p.file_name().is_some_and(|f| f == "main.rs") {
            let lines: Vec<&str> = text.lines().collect();
            if let Some(i) = lines.iter().position(|l| l.starts_with("fn main(")) {
                let len = lines[i..]
                    .iter()
                    .position(|l| *l == "}")
                    .map_or(lines.len() - i, |e| e + 1);
                if len > 60 {
                    bad.push(format!(
                        "{}: main is {len} lines (at most 60)",
                        rel(&p)
                    ));
                }
            }
        }
    }
    assert!(bad.is_empty(), "over the reading shape:\n{}", bad.join("\n"));
}

#[test]
fn shown_code_fits_the_page() {
    let mut bad = Vec::new();
    for p in lab_files() {
        let text = fs::read_to_string(&p).unwrap();
        for (name, lines) in anchors(&text) {
            if !(1..=25).contains(&lines.len()) {
                bad.push(format!(
                    "{}:{name}: an anchor of {} lines (at most 25)",
                    rel(&p),
                    lines.len()
                ));
            }
            let indent = lines
                .iter()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.len() - l.trim_start().len())
                .min()
                .unwrap_or(0);
            for l in &lines {
                let w = l.chars().count().saturating_sub(indent);
                if w > 80 {
                    bad.push(format!(
                        "{}:{name}: {w} columns: {}",
                        rel(&p),
                        l.trim()
                    ));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "shown lines wider than 80 columns:\n{}",
        bad.join("\n")
    );
}

#[test]
fn safety_comments_sit_directly_above_their_unsafe() {
    let mut bad = Vec::new();
    let mut files = lab_files();
    rs_files(&root().join("src"), &mut files);
    rs_files(&root().join("benches"), &mut files);
    for p in files {
        let text = fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let Some(at) = l.find("// SAFETY:") else { continue };
            if !l[..at].trim().is_empty() {
                bad.push(format!(
                    "{}:{}: SAFETY as a trailing comment",
                    rel(&p),
                    i + 1
                ));
                continue;
            }
            // The first line after the comment block is the code it is about.
            let Some(code) =
                lines[i + 1..].iter().find(|c| !c.trim_start().starts_with("//"))
            else {
                continue;
            };
            let ind = |s: &str| s.len() - s.trim_start().len();
            if ind(code) != ind(l) {
                bad.push(format!(
                    "{}:{}: SAFETY indented unlike the code below it",
                    rel(&p),
                    i + 1
                ));
            } else if !code.contains("unsafe") {
                bad.push(format!(
                    "{}:{}: no `unsafe` right below the SAFETY comment",
                    rel(&p),
                    i + 1
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn every_unsafe_block_has_its_safety_comment() {
    // An `unsafe` block's statement starts right below a `// SAFETY:` comment block.
    let mut bad = Vec::new();
    let mut files = lab_files();
    rs_files(&root().join("src"), &mut files);
    rs_files(&root().join("exercises"), &mut files);
    for p in files {
        let text = fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let code = l.split("//").next().unwrap_or("");
            if !code.contains("unsafe {") {
                continue;
            }
            // A match arm's unsafe block (`ForkResult::Child => unsafe {`) is covered by
            // the SAFETY comment above its `match unsafe { fork() }`.
            let arm = code.contains("=> unsafe {");
            let mut j = i;
            let ok = loop {
                if j == 0 {
                    break false;
                }
                j -= 1;
                let up = lines[j].trim();
                if up.starts_with("// ANCHOR") {
                    continue; // the book's markers are not comments about the code
                }
                if up.starts_with("//") {
                    // The comment block right above: SAFETY somewhere in it.
                    let mut k = j;
                    while k > 0
                        && lines[k].trim().starts_with("//")
                        && !lines[k].contains("SAFETY:")
                    {
                        k -= 1;
                    }
                    break lines[k].contains("SAFETY:");
                }
                if arm && up.contains("match ") && up.contains("unsafe") {
                    continue; // the match line: its SAFETY comment is right above it
                }
                if up.is_empty()
                    || up.ends_with(';')
                    || up.ends_with('{')
                    || up.ends_with('}')
                    || up.ends_with(',')
                {
                    break false;
                }
            };
            if !ok {
                bad.push(format!("{}:{}: {}", rel(&p), i + 1, l.trim()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "unsafe blocks without a `// SAFETY:` comment directly above:\n{}",
        bad.join("\n")
    );
}

#[test]
fn headers_are_short_and_name_their_chapter() {
    let mut bad = Vec::new();
    for p in lab_files() {
        let text = fs::read_to_string(&p).unwrap();
        let head = text.lines().take_while(|l| l.starts_with("//!")).count();
        if head > 8 {
            bad.push(format!(
                "{}: a //! header of {head} lines (at most 8)",
                rel(&p)
            ));
        }
        let is_main = p.file_name().is_some_and(|f| f == "main.rs")
            || p.parent().is_some_and(|d| d.ends_with("labs"));
        if is_main
            && !rel(&p).contains("labs/lab/")
            && !text.lines().take(head).any(|l| l.contains("book/src/"))
        {
            bad.push(format!(
                "{}: the header does not name its chapter (book/src/...)",
                rel(&p)
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn the_harness_holds_only_what_several_labs_use() {
    let lib = fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let modules: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';'))
        .collect();
    // The names each module re-exports at the crate root (`pub use report::{Common, Lab}`).
    let mut reexports: HashMap<&str, Vec<String>> = HashMap::new();
    for l in lib.lines() {
        if let Some(rest) = l.strip_prefix("pub use ") {
            if let Some((m, names)) = rest.split_once("::") {
                let names =
                    names.trim_matches(|c| c == '{' || c == '}' || c == ';');
                reexports
                    .entry(m)
                    .or_default()
                    .extend(names.split(',').map(|n| n.trim().to_string()));
            }
        }
    }
    // Each lab (a file or a folder under labs/, the runner excluded) and each bench.
    let mut users: HashMap<String, String> = HashMap::new();
    for p in lab_files() {
        let r = rel(&p);
        let owner = r
            .trim_start_matches("labs/")
            .split(['/', '.'])
            .next()
            .unwrap()
            .to_string();
        if owner == "lab" {
            continue;
        }
        users.entry(owner).or_default().push_str(&fs::read_to_string(&p).unwrap());
    }
    let mut benches = Vec::new();
    rs_files(&root().join("benches"), &mut benches);
    for p in benches {
        users.insert(rel(&p), fs::read_to_string(&p).unwrap());
    }
    let mut lonely = Vec::new();
    for m in modules {
        let names = reexports.get(m).cloned().unwrap_or_default();
        let n = users
            .values()
            .filter(|code| {
                code.contains(&format!("{m}::"))
                    || code.contains(&format!("proclab::{m}"))
                    || code.lines().any(|l| {
                        (l.contains(&format!(" {m},"))
                            || l.contains(&format!(" {m}}}"))
                            || l.contains(&format!("{{{m},")))
                            && l.contains("proclab")
                    })
                    || names.iter().any(|n| {
                        code.contains(&format!("{n}::"))
                            || code.contains(&format!("{n}("))
                    })
            })
            .count();
        if n < 2 {
            lonely.push(format!(
                "src/{m}.rs is used by {n} lab(s): move it to the lab that uses it"
            ));
        }
    }
    assert!(lonely.is_empty(), "{}", lonely.join("\n"));
}

/// A line that carries code (not a brace, a blank or a comment).
fn meaningful(l: &str) -> bool {
    let t = l.trim();
    !(t.is_empty()
        || t.starts_with("//")
        || t.starts_with("use ")
        || t.starts_with("pub use ")
        || t.starts_with("mod ")
        || t.chars().all(|c| "{}()[];,".contains(c)))
}

#[test]
fn no_block_of_six_lines_is_written_twice() {
    let mut files = lab_files();
    rs_files(&root().join("src"), &mut files);
    rs_files(&root().join("benches"), &mut files);
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut dups = Vec::new();
    for p in &files {
        let text = fs::read_to_string(p).unwrap();
        let lines: Vec<(usize, String)> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| meaningful(l))
            .map(|(i, l)| {
                (i + 1, l.split_whitespace().collect::<Vec<_>>().join(" "))
            })
            .collect();
        let mut here: HashMap<String, usize> = HashMap::new();
        for w in lines.windows(6) {
            let key =
                w.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n");
            let at = format!("{}:{}", rel(p), w[0].0);
            if let Some(first) = seen.get(&key) {
                if !first.starts_with(&rel(p)) || here.contains_key(&key) {
                    dups.push(format!("{at} repeats {first}"));
                }
            } else {
                seen.insert(key.clone(), at);
            }
            here.insert(key, w[0].0);
        }
    }
    dups.dedup_by(|a, b| a.split(':').next() == b.split(':').next());
    assert!(
        dups.is_empty(),
        "blocks of six lines written twice:\n{}",
        dups.join("\n")
    );
}

/// rustfmt aligns a comment line that follows a line with a trailing comment under that
/// comment, which glues an `// ANCHOR`, a `// SAFETY:` or any other comment line to the
/// code above it in the reader's eye. The guide says: no trailing comment there.
#[test]
fn no_comment_line_is_glued_to_a_trailing_comment() {
    let mut bad = Vec::new();
    let mut files = lab_files();
    for dir in ["src", "exercises", "benches"] {
        rs_files(&root().join(dir), &mut files);
    }
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, pair) in lines.windows(2).enumerate() {
            let (above, line) = (pair[0], pair[1]);
            let Some(at) = above.find(" // ") else { continue };
            let code = above[..at].trim();
            let col = line.len() - line.trim_start().len();
            if !code.is_empty()
                && line.trim_start().starts_with("//")
                && col == at + 1
            {
                bad.push(format!("{}:{}: {}", rel(&path), i + 2, line.trim()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "comment lines glued to a trailing comment:\n{}",
        bad.join("\n")
    );
}

/// A `[[bin]]` with `test = false` is never built as a test: a `#[cfg(test)]` module in
/// its files would be a test that never runs.
#[test]
fn no_unit_test_hides_in_a_bin_that_cargo_test_skips() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let mut bad = Vec::new();
    for bin in manifest.split("[[bin]]").skip(1) {
        let bin = bin.split("\n[").next().unwrap_or(bin);
        let skipped =
            bin.lines().any(|l| l.trim().replace(' ', "") == "test=false");
        let path = bin.lines().find_map(|l| {
            let v = l.trim().strip_prefix("path")?.trim().strip_prefix('=')?;
            Some(v.trim().trim_matches('"').to_string())
        });
        let (true, Some(path)) = (skipped, path) else { continue };
        let main = root().join(&path);
        let mut files = vec![main.clone()];
        if main.ends_with("main.rs") {
            files.clear();
            rs_files(main.parent().unwrap(), &mut files);
        }
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            if text.contains("#[cfg(test)]") {
                bad.push(rel(&f));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "unit tests that cargo test never runs (test = false): {bad:?}"
    );
}
