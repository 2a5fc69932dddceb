//! Solution of exec-replace: Command::exec replaces the launcher; if it returns, the exec
//! failed, and the launcher exits 127.

use proclab::say_as;
use std::os::unix::process::CommandExt;
use std::process::Command;

pub fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((program, rest)) = args.split_first() else {
        eprintln!("usage: ex-exec-replace PROGRAM [ARGS...]");
        std::process::exit(2)
    };
    let mut cmd = Command::new(program);
    cmd.args(rest).env("PROCLAB_GREETING", "hello");
    say_as!("launcher", "running {program}");
    let error = cmd.exec(); // returns only if the exec failed
    eprintln!("ex-exec-replace: {program}: {error}");
    std::process::exit(127)
}
