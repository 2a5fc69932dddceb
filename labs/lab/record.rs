//! `lab record`: run each lab from a release build and write its output, with the command,
//! date, kernel and CPU, to `book/src/measured/NAME.txt`.

use crate::roster::LabInfo;
use crate::{bin_dir, header, run, verdict_word};
use std::path::Path;

pub fn record(labs: &[&'static LabInfo]) {
    let dir = bin_dir(true);
    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/measured");
    std::fs::create_dir_all(&out_dir).expect("create book/src/measured");
    let mut failed = 0;
    for l in labs {
        eprint!("recording {} ... ", l.name);
        let out = run(&dir, l, false);
        if out.code != Some(0) {
            eprintln!(
                "{} (exit {:?}): not written",
                verdict_word(out.code),
                out.code
            );
            failed += 1;
            continue;
        }
        let mut command = format!("cargo run --release --bin {}", l.name);
        if !l.args.is_empty() {
            command += &format!(" -- {}", l.args.join(" "));
        }
        let text = header(&command, "lab record") + &out.stdout;
        let path = out_dir.join(format!("{}.txt", l.name));
        std::fs::write(&path, text).expect("write measured output");
        eprintln!("ok ({:.1}s) -> {}", out.secs, path.display());
    }
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
