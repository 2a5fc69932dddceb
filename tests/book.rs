//! The book and the layout: every lab has its bin, its chapter (listed in SUMMARY.md, with
//! the code included by anchor and the measured output included), its recorded output and
//! its README row; the recorded output still has the shape of a fresh run; and each chapter
//! shows the picture drawn from the events of the run it prints.
mod common;

#[path = "../labs/lab/roster.rs"]
#[allow(dead_code)]
mod roster;
use roster::LABS;
#[path = "../labs/lab/svg.rs"]
#[allow(dead_code)]
mod svg;
use std::fs;
use std::path::Path;

fn read(path: &str) -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
}

#[test]
fn every_lab_has_bin_chapter_measured_output_and_readme_row() {
    let cargo = read("Cargo.toml");
    let summary = read("book/src/SUMMARY.md");
    let readme = read("README.md");
    for l in LABS {
        let bin = format!(
            "name = \"{}\"\npath = \"labs/{}\"\nbench = false",
            l.name, l.file
        );
        assert!(cargo.contains(&bin), "Cargo.toml lacks [[bin]] {bin:?}");
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("labs")
                .join(l.file)
                .exists(),
            "labs/{} missing",
            l.file
        );
        assert!(
            l.file.starts_with(&format!("{:02}_", l.number)),
            "{} is not numbered {:02}",
            l.file,
            l.number
        );
        assert!(
            summary.contains(&format!("({})", l.chapter)),
            "SUMMARY.md does not list {}",
            l.chapter
        );
        let chapter = read(&format!("book/src/{}", l.chapter));
        assert!(
            chapter.contains(&format!("{{{{#include measured/{}.txt}}}}", l.name)),
            "{} does not include its measured output",
            l.chapter
        );
        assert!(
            chapter.contains(&format!(
                "{{{{#include ../../labs/{}",
                l.file.strip_suffix("main.rs").unwrap_or(l.file)
            )),
            "{} does not include its code by anchor",
            l.chapter
        );
        assert!(
            chapter.contains("<details>"),
            "{} has no exercises with folded answers",
            l.chapter
        );
        let measured = read(&format!("book/src/measured/{}.txt", l.name));
        assert!(
            measured
                .starts_with(&format!("$ cargo run --release --bin {}", l.name)),
            "measured/{}.txt lacks its command header",
            l.name
        );
        assert!(
            measured
                .lines()
                .nth(1)
                .is_some_and(|h| h.starts_with("# recorded by `lab record` on ")),
            "measured/{}.txt lacks its machine header",
            l.name
        );
        assert!(
            readme.contains(&format!("`cargo run --bin {}`", l.name)),
            "README has no row for {}",
            l.name
        );
    }
    // And nothing in labs/ is missing from the roster.
    for entry in fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("labs"))
        .unwrap()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        // A lab is a file `labs/NN_name.rs` or a folder `labs/NN_name/` with its main.rs;
        // `labs/lab/` is the runner and `labs/README.md` the contributor's guide.
        if name == "lab" || name == "README.md" {
            continue;
        }
        assert!(
            LABS.iter().any(|l| l.file == name
                || l.file.split('/').next() == Some(name.as_str())),
            "labs/{name} is not in the roster (labs/lab/roster.rs)"
        );
    }
}

#[test]
fn every_included_anchor_exists() {
    for l in LABS {
        let chapter = read(&format!("book/src/{}", l.chapter));
        for part in chapter.split("{{#include ../../labs/").skip(1) {
            let spec = &part[..part.find("}}").expect("closed include")];
            let (file, anchor) = spec.split_once(':').unwrap_or((spec, ""));
            let home = l.file.strip_suffix("main.rs").unwrap_or(l.file);
            assert!(
                file.starts_with(home),
                "{} includes {file}, not a file of its own lab",
                l.chapter
            );
            let code = read(&format!("labs/{file}"));
            if !anchor.is_empty() {
                assert!(
                    code.contains(&format!("// ANCHOR: {anchor}\n")),
                    "{}: no ANCHOR {anchor} in {file}",
                    l.chapter
                );
                assert!(
                    code.contains(&format!("// ANCHOR_END: {anchor}\n")),
                    "{}: no ANCHOR_END {anchor} in {file}",
                    l.chapter
                );
            }
        }
    }
}

/// The shape of an output: its section headings, its checks and its verdict, in order, with
/// every number masked (pids, timings, sizes and counts vary between runs).
fn shape(text: &str) -> Vec<String> {
    let mut mask = String::new();
    text.lines()
        .filter(|l| {
            l.starts_with("== ")
                || l.starts_with("  ✓")
                || l.starts_with("  ✗")
                || l.starts_with("verdict:")
        })
        .map(|l| {
            mask.clear();
            let mut in_num = false;
            for c in l.chars() {
                let digit =
                    c.is_ascii_digit() || (in_num && (c == '.' || c == ','));
                if digit && !in_num {
                    mask.push('N');
                }
                if !digit {
                    mask.push(c);
                }
                in_num = digit;
            }
            // A measured quantity may change its unit between runs (850 ns, 1.2 µs).
            let mut out = mask.clone();
            for unit in [
                "ns", "µs", "ms", "s", "B", "KiB", "MiB", "GiB", "KiB/s", "MiB/s",
                "GiB/s",
            ] {
                out = out
                    .replace(&format!("N {unit}/"), "N u/")
                    .replace(&format!("N {unit} "), "N u ");
                if out.ends_with(&format!("N {unit}")) {
                    out.truncate(out.len() - unit.len());
                    out.push('u');
                }
                for end in [",", ")", ";", ":"] {
                    out = out
                        .replace(&format!("N {unit}{end}"), &format!("N u{end}"));
                }
            }
            out
        })
        .collect()
}

#[test]
fn recorded_outputs_have_the_shape_of_a_fresh_run() {
    // Every lab is tried, and every mismatch reported at the end.
    let mut bad = Vec::new();
    for l in LABS {
        let recorded = read(&format!("book/src/measured/{}.txt", l.name));
        // This test is about drift, not about verifying (each lab's own tests do that): a run
        // that did not verify on a loaded machine is tried once more before failing.
        let (mut code, mut fresh) = common::run_human(l.name, l.args);
        if code != Some(0) {
            eprintln!(
                "{} exited {code:?} on a fresh run; trying once more:\n{fresh}",
                l.name
            );
            (code, fresh) = common::run_human(l.name, l.args);
        }
        if code != Some(0) {
            bad.push(format!(
                "{} did not verify on two fresh runs:\n{fresh}",
                l.name
            ));
        } else if shape(&recorded) != shape(&fresh) {
            let (r, f) = (shape(&recorded), shape(&fresh));
            let first = r
                .iter()
                .zip(&f)
                .position(|(a, b)| a != b)
                .unwrap_or(r.len().min(f.len()));
            bad.push(format!(
                "book/src/measured/{}.txt no longer matches the lab (run `cargo run --bin lab -- record {}`); first difference:\n  recorded: {:?}\n  fresh:    {:?}",
                l.name,
                l.name,
                r.get(first),
                f.get(first)
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n\n"));
}

#[test]
fn chapter_numbers_are_lab_numbers() {
    // mdBook numbers the list items of SUMMARY.md in order: chapter N must be lab N.
    let summary = read("book/src/SUMMARY.md");
    let chapters: Vec<&str> = summary
        .lines()
        .filter_map(|l| l.strip_prefix("- ["))
        .filter_map(|l| l.split("](").nth(1))
        .map(|l| l.trim_end_matches(')'))
        .collect();
    let mut labs: Vec<_> = LABS.iter().collect();
    labs.sort_by_key(|l| l.number);
    let want: Vec<&str> = labs.iter().map(|l| l.chapter).collect();
    assert_eq!(
        &chapters[..want.len().min(chapters.len())],
        &want[..],
        "SUMMARY.md lists the labs' chapters in lab order"
    );
}

#[test]
fn readme_table_is_the_roster() {
    let readme = read("README.md");
    let rows: String = LABS
        .iter()
        .map(|l| {
            format!(
                "| {:02} | `cargo run --bin {}` | {} |\n",
                l.number, l.name, l.shows
            )
        })
        .collect();
    let table = format!("| # | run | what it shows |\n| --- | --- | --- |\n{rows}");
    assert!(readme.contains(&table), "README.md's table of labs differs from the roster; it should read:\n{table}");
}

/// Whole numbers in `text` (pids among them).
fn numbers(text: &str) -> std::collections::HashSet<&str> {
    text.split(|c: char| !c.is_ascii_digit()).filter(|w| !w.is_empty()).collect()
}

#[test]
fn every_chapter_shows_the_picture_of_the_run_it_prints() {
    let mut bad = Vec::new();
    for l in LABS {
        let chapter = read(&format!("book/src/{}", l.chapter));
        let output = format!("{{{{#include measured/{}.txt}}}}", l.name);
        let picture = format!("](measured/{}.svg)", l.name);
        match (chapter.find(&output), chapter.find(&picture)) {
            (Some(o), Some(p)) if o < p => {
                let line = chapter[..p].rsplit('\n').next().unwrap_or("");
                if !line.starts_with("![") {
                    bad.push(format!("{}: the picture is not an image: {line}", l.chapter));
                }
            }
            _ => bad.push(format!(
                "{} does not show ![...](measured/{}.svg) after its measured output",
                l.chapter, l.name
            )),
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/measured");
        let get =
            |ext: &str| fs::read_to_string(root.join(format!("{}.{ext}", l.name)));
        let (Ok(text), Ok(events), Ok(svg)) =
            (get("txt"), get("events.jsonl"), get("svg"))
        else {
            bad.push(format!(
                "measured/{0}.txt, .events.jsonl or .svg is missing: run `cargo run --bin lab -- record {0}`",
                l.name
            ));
            continue;
        };
        bad.extend(picture_problems(l.name, &text, &events, &svg));
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// What keeps `svg` from being the picture of the run recorded in `text`, whose events
/// are `events` (JSON lines): nothing when the events printed the text, the picture is
/// their drawing, and the text names processes it draws.
fn picture_problems(
    name: &str,
    text: &str,
    events: &str,
    svg: &str,
) -> Vec<String> {
    let mut bad = Vec::new();
    // The events are those of the recorded run: every line they print is in it.
    let events: Vec<serde_json::Value> =
        events.lines().filter_map(|e| serde_json::from_str(e).ok()).collect();
    let printed = events
        .iter()
        .filter(|e| e["event"] == "observation" || e["event"] == "check")
        .filter_map(|e| e["text"].as_str());
    let mut n = 0;
    for line in printed {
        n += 1;
        if !text.contains(line) {
            bad.push(format!(
                "measured/{}.events.jsonl is not the run of {}.txt: it printed {line:?}",
                name, name
            ));
            break;
        }
    }
    if n == 0 {
        bad.push(format!("measured/{}.events.jsonl holds no observation", name));
    }
    // The picture is drawn from those events, as the drawing does it now.
    let timeline = proclab::report::timeline::Timeline::from_events(&events);
    if svg::render(&timeline) != svg {
        bad.push(format!(
            "measured/{}.svg is not the drawing of its events: run `cargo run --bin lab -- redraw {}`",
            name, name
        ));
    }
    // The lanes are processes of this run: the text names some of them. (Not every
    // one: a fact can name a pid for the picture that the line does not print, such as
    // the counting processes of shm; the two checks above tie the picture to the run.)
    let named = numbers(text);
    let pids = timeline.pids();
    let in_text =
        pids.iter().filter(|p| named.contains(p.to_string().as_str())).count();
    if pids.len() < 2 || in_text == 0 {
        bad.push(format!(
            "measured/{}.svg draws {} processes, {in_text} of them named in the recorded text",
            name,
            pids.len()
        ));
    }
    for p in &pids {
        if !svg.contains(&format!("data-pid=\"{p}\"")) {
            bad.push(format!("measured/{}.svg has no lane for {p}", name));
        }
    }
    bad
}

#[test]
fn a_picture_of_another_run_is_caught() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/measured");
    let get = |f: &str| fs::read_to_string(root.join(f)).unwrap();
    let (text, events, svg) =
        (get("zombie.txt"), get("zombie.events.jsonl"), get("zombie.svg"));
    assert_eq!(
        picture_problems("zombie", &text, &events, &svg),
        Vec::<String>::new()
    );
    // Another run's events and picture beside this text.
    let (fork_events, fork_svg) = (get("fork.events.jsonl"), get("fork.svg"));
    let other = picture_problems("zombie", &text, &fork_events, &fork_svg);
    assert!(other.iter().any(|p| p.contains("is not the run of")), "{other:?}");
    // A picture changed by hand, or drawn from other events.
    let edited = svg.replacen("reaped: exit 7", "reaped: exit 8", 1);
    let bad = picture_problems("zombie", &text, &events, &edited);
    assert!(bad.iter().any(|p| p.contains("is not the drawing")), "{bad:?}");
    let bad = picture_problems("zombie", &text, &events, &fork_svg);
    assert!(bad.iter().any(|p| p.contains("is not the drawing")), "{bad:?}");
}
