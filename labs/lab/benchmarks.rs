//! `lab benchmarks`: run each criterion group and, right after it, the C reference doing
//! the same work; write the figures to `book/src/measured/bench-GROUP.txt`.

use crate::{benchsum, header};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn benchmarks(groups: &[String], no_run: bool) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let out_dir = root.join("book/src/measured");
    std::fs::create_dir_all(&out_dir).expect("create book/src/measured");
    if !no_run {
        // One group at a time, each followed at once by the C figures doing the same work.
        let mut reference = String::new();
        for (group, figures) in benchsum::GROUPS {
            if !groups.is_empty() && !groups.iter().any(|g| g == group) {
                continue;
            }
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["bench", "--manifest-path"]).arg(root.join("Cargo.toml"));
            cmd.args(["--", &format!("^{group}/")]);
            match cmd.status() {
                Ok(s) if s.success() => {}
                other => {
                    eprintln!("error: cargo bench failed: {other:?}");
                    std::process::exit(1)
                }
            }
            if figures.is_empty() {
                continue;
            }
            match benchsum::run_refbench(root, &target, figures) {
                Ok(text) => {
                    reference += &format!(
                        "# right after `cargo bench -- '^{group}/'`\n{text}"
                    )
                }
                Err(e) => eprintln!("note: C reference not run: {e}"),
            }
        }
        if !reference.is_empty() {
            let command = "gcc -O2 -pthread ../shared/reference/refbench.c -o refbench && ./refbench FIGURES...";
            std::fs::write(
                out_dir.join("refbench.txt"),
                header(command, "lab benchmarks") + &reference,
            )
            .expect("write refbench.txt");
            eprintln!("wrote {}", out_dir.join("refbench.txt").display());
        }
    }
    let results = benchsum::collect(&target.join("criterion"));
    if results.is_empty() {
        eprintln!(
            "error: no criterion results under {}",
            target.join("criterion").display()
        );
        std::process::exit(1)
    }
    let reference_text =
        std::fs::read_to_string(out_dir.join("refbench.txt")).unwrap_or_default();
    for (group, rows) in benchsum::by_group(&results) {
        if !groups.is_empty() && !groups.contains(&group) {
            continue;
        }
        let reference =
            benchsum::parse_refbench(&benchsum::section(&reference_text, &group));
        let command = format!("cargo bench -- '^{group}/'");
        let text = header(&command, "lab benchmarks")
            + &benchsum::table(&rows, &reference);
        let path = out_dir.join(format!("bench-{group}.txt"));
        std::fs::write(&path, text).expect("write bench summary");
        let svg = target.join("criterion").join(&group).join("report/violin.svg");
        if svg.exists() {
            let _ = std::fs::copy(&svg, out_dir.join(format!("bench-{group}.svg")));
        }
        eprintln!("wrote {}", path.display());
    }
}
