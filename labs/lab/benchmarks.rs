//! `lab benchmarks`: run the criterion groups (Rust: the thread way against the process
//! way), then `benches/versus_c` (Rust against the C reference in alternating rounds,
//! with the system calls counted); write the figures and their charts to
//! `book/src/measured/`.

use crate::{benchsum, header};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// The name that selects the Rust-against-C comparison; `ipc` (its pipe and
/// shared-memory rows, the table of chapters 05 and 06) runs it too.
const VERSUS: &str = "versus-c";

fn cargo_bench(root: &Path, bench: &str, args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["bench", "--manifest-path"]).arg(root.join("Cargo.toml"));
    cmd.args(["--bench", bench, "--"]).args(args);
    match cmd.status() {
        Ok(s) if s.success() => {}
        other => {
            eprintln!("error: cargo bench --bench {bench} failed: {other:?}");
            std::process::exit(1)
        }
    }
}

pub fn benchmarks(groups: &[String], no_run: bool) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let out_dir = root.join("book/src/measured");
    std::fs::create_dir_all(&out_dir).expect("create book/src/measured");
    let wanted = |g: &str| {
        groups.is_empty()
            || groups.iter().any(|w| w == g || (g == VERSUS && w == "ipc"))
    };
    for g in groups {
        let known = g == VERSUS || g == "ipc";
        if !known && !benchsum::GROUPS.iter().any(|(name, _)| name == g) {
            eprintln!("error: no benchmark group {g:?}");
            std::process::exit(2)
        }
    }
    let started = SystemTime::now();
    if !no_run {
        for (group, bench) in benchsum::GROUPS {
            if wanted(group) {
                cargo_bench(root, bench, &[&format!("^{group}/")]);
            }
        }
        if wanted(VERSUS) {
            versus_c(root, &target, &out_dir);
        }
    }
    let since = (!no_run).then_some(started);
    let results = benchsum::collect(&target.join("criterion"), since);
    for (group, rows) in benchsum::by_group(&results) {
        if !wanted(&group) || !benchsum::GROUPS.iter().any(|(g, _)| *g == group) {
            continue;
        }
        let bench = benchsum::GROUPS.iter().find(|(g, _)| *g == group).unwrap().1;
        let command = format!("cargo bench --bench {bench} -- '^{group}/'");
        let text = header(&command, "lab benchmarks") + &benchsum::table(&rows);
        let path = out_dir.join(format!("bench-{group}.txt"));
        std::fs::write(&path, text).expect("write bench summary");
        eprintln!("wrote {}", path.display());
    }
    // Every chart from what is recorded now (deterministic: unchanged figures, same SVG).
    crate::charts::charts(&[]);
    if no_run && wanted(VERSUS) {
        eprintln!(
            "note: --no-run: the Rust-against-C tables are written only by a run"
        );
    }
}

/// Run the rounds against C and put their tables in the book, each with its header.
fn versus_c(root: &Path, target: &Path, out_dir: &Path) {
    let dir = target.join("versus_c");
    let _ = std::fs::remove_dir_all(&dir); // never a table of an earlier run
    let dir_s = dir.display().to_string();
    cargo_bench(root, "versus_c", &["--why", "--out", &dir_s]);
    let command = "cargo bench --bench versus_c -- --why";
    for (from, to) in [
        ("versus-c.txt", "bench-versus-c.txt"),
        ("ipc.txt", "bench-ipc.txt"),
        ("refbench.txt", "refbench.txt"),
    ] {
        let body = std::fs::read_to_string(dir.join(from))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join(from).display()));
        let path = out_dir.join(to);
        std::fs::write(&path, header(command, "lab benchmarks") + &body)
            .expect("write the versus_c table");
        eprintln!("wrote {}", path.display());
    }
}
