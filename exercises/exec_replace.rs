//! Exercise exec-replace (chapter 2, book/src/02-exec.md): become the program.
//!
//! A launcher sets PROCLAB_GREETING=hello and runs the program its arguments name
//! (`ex-exec-replace sleep 30`). As given it starts the program as a child and waits: two
//! processes, and a SIGTERM sent to the launcher does not reach the program. Make the
//! launcher become the program (same pid, new program, as `exec "$@"` in a shell script),
//! and exit with status 127 when the program cannot be run, as a shell does.
//!
//! Check: `cargo run --bin lab -- check exec-replace`. The checker watches the launcher's
//! pid in /proc: its program must change with no child created, the greeting must be in
//! its environment, SIGTERM must end it; and a missing program must give status 127.

use proclab::say_as;
use std::process::Command;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((program, rest)) = args.split_first() else {
        eprintln!("usage: ex-exec-replace PROGRAM [ARGS...]");
        std::process::exit(2)
    };
    let mut cmd = Command::new(program);
    cmd.args(rest).env("PROCLAB_GREETING", "hello");
    say_as!("launcher", "running {program}");
    // TODO: become the program instead of starting it as a child (exit 127 if it
    // cannot be run).
    let status = cmd.status().expect("start the program");
    std::process::exit(status.code().unwrap_or(1))
}
