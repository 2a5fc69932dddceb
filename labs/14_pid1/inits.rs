//! Part 6: the same program under tini and dumb-init (when installed), and as PID 1
//! itself with no init, beside the lab's own init: who adopts the orphans, how many
//! zombies stay, what SIGTERM does, whether the status comes out.
//! Chapter: book/src/14-pid1.md

use crate::ns;
use crate::trial::{self, Init, Trial};
use crate::{privileges::Ctx, Args};
use nix::unistd::Pid;
use proclab::{cleanup, observe, Lab};
use std::process::{Command, Stdio};

/// The installed inits: name, Debian package, arguments before the program's.
const TOOLS: [(&str, &[&str]); 2] = [("tini", &["--"]), ("dumb-init", &[])];

/// `name` found on PATH, if it is there.
fn on_path(name: &str) -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .map(|dir| format!("{dir}/{name}"))
        .find(|p| std::path::Path::new(p).is_file())
}

/// `tini version 0.19.0 - git.de40ad0` or `dumb-init v1.2.5` (dumb-init writes it
/// on stderr): the version word.
fn version(path: &str) -> String {
    let Ok(child) = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        return "?".into();
    };
    let pid = Pid::from_raw(child.id() as i32);
    cleanup::track(pid);
    let out = child.wait_with_output();
    cleanup::forget(pid);
    let out = out.map(|o| [o.stdout, o.stderr].concat()).unwrap_or_default();
    let text = String::from_utf8_lossy(&out);
    let number = |w: &&str| {
        w.trim_start_matches('v').starts_with(|c: char| c.is_ascii_digit())
    };
    let word = text.split_whitespace().find(number);
    word.unwrap_or("?").trim_start_matches('v').to_string()
}

/// One row of the table, and the observation it rests on.
fn row(lab: &mut Lab, init: &str, n: u32, t: &Trial) -> Vec<String> {
    let (adopted, zombies, sigterm, answered, exit7) =
        (&t.adopted, t.zombies, t.sigterm, t.answered, t.exit7);
    let after_sigterm = match (sigterm.0, answered) {
        (None, true) => "ignored: PID 1 still answers".to_string(),
        _ => sigterm.to_string(),
    };
    // pid: PID 1 as the lab sees it; ns_ppids: the orphans' getppid() inside.
    observe!(
        lab,
        "init_row",
        "{init} (PID 1 is {pid} outside): orphans adopted by {shown}, {zombies} \
         zombies left; {sent}: {after_sigterm}; program exits 7: PID 1 \
         ({exit7_pid}) {exit7}",
        init,
        pid = t.pid,
        forked = true,
        orphans = n,
        ns_ppids = adopted,
        shown = ns::words(adopted),
        zombies,
        sent = "SIGTERM",
        status = sigterm,
        answered,
        exit7_pid = t.exit7_pid,
        exit7
    );
    let ppids: Vec<String> = adopted.iter().map(|p| p.to_string()).collect();
    let z = format!("{zombies} of {n}");
    vec![init.into(), ppids.join(" "), z, after_sigterm, exit7.to_string()]
}

pub fn run(lab: &mut Lab, ctx: &Ctx, args: &Args, ours: &Trial) {
    lab.section("6. The same program under tini, dumb-init, and no init at all");
    let n = args.orphans;
    let mut rows = Vec::new();
    let none = trial::run(ctx, &Init::None, n);
    rows.push(row(lab, "none (the program is PID 1)", n, &none));
    rows.push(row(lab, "the lab's init (part 5)", n, ours));
    for (name, before) in TOOLS {
        let Some(path) = on_path(name) else {
            let why = format!("{name} is not installed (apt-get install -y {name}): its row is skipped");
            observe!(lab, "init_missing", "{why}", init = name, why);
            continue;
        };
        let t = trial::run(ctx, &Init::Tool(path.clone(), before), n);
        let label = format!("{name} {}", version(&path));
        rows.push(row(lab, &label, n, &t));
    }
    let headers = [
        "PID 1",
        "orphans' getppid()",
        "zombies left",
        "after SIGTERM to PID 1",
        "when the program exits 7",
    ];
    lab.table("inits", &headers, &rows);
}
