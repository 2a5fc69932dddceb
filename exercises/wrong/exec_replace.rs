//! A wrong solution of exec-replace: it execs, but a failed exec panics, so a missing
//! program gives status 101 instead of 127. The check `not_found_127` fails.

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
    panic!("cannot run {program}: {error}")
}
