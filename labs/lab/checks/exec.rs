//! Checks of the exec exercises (chapter 2).

use super::exited_cleanly;
use crate::observer::Observer;
use crate::timeline::Proc;
use nix::sys::signal::Signal;
use proclab::{check, observe, Lab, OrDie};
use std::time::Duration;

/// Where the descriptors of `pid` lead (`/proc/PID/fd/N`), as (N, target).
fn fds(pid: i32) -> Vec<(String, String)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let links = dir.flatten().filter_map(|e| {
        let to = std::fs::read_link(e.path()).ok()?;
        Some((
            e.file_name().to_string_lossy().into_owned(),
            to.display().to_string(),
        ))
    });
    links.collect()
}

/// exec-cloexec: the program holds the secret open, a child execs another program, and
/// that program holds no descriptor of the secret.
pub fn cloexec(lab: &mut Lab, obs: &mut Observer) {
    let secret = obs.dir.join("secret.txt");
    std::fs::write(&secret, "the key to everything\n")
        .or_die("write the secret file");
    let secret = secret.display().to_string();
    let pid = obs.spawn(std::slice::from_ref(&secret));
    let (mut held, mut execd, mut leaked) = (false, Vec::new(), Vec::new());
    // Before its exec, a process runs the observer's program, then the exercise's.
    let ours = [
        obs.program(),
        std::env::current_exe().unwrap_or_default().display().to_string(),
    ];
    let end = obs.until(Duration::from_secs(10), |tl| {
        held |= fds(pid).iter().any(|(_, to)| *to == secret);
        let other = |p: &&&Proc| {
            p.running() && p.exes.last().is_some_and(|e| !ours.contains(e))
        };
        for p in tl.descendants_of(pid).iter().filter(other) {
            let program = p.exes.last().cloned().unwrap_or_default();
            if !execd.contains(&(p.pid, program.clone())) {
                // The kernel closes close-on-exec descriptors late in execve, after the
                // new program is in place: look at its descriptors from the next sample.
                execd.push((p.pid, program));
                continue;
            }
            for (fd, to) in fds(p.pid) {
                if to == secret && !leaked.contains(&(p.pid, fd.clone())) {
                    leaked.push((p.pid, fd));
                }
            }
        }
        tl.get(pid).and_then(|p| p.end)
    });
    observe!(lab, "exec", "programs exec'd below yours: {execd:?}", execd);
    check!(
        lab,
        "holds_secret",
        held,
        "your program holds the secret open (seen: {held})"
    );
    check!(
        lab,
        "execd",
        !execd.is_empty(),
        "a child of your program runs another program with exec (seen: {n})",
        n = execd.len()
    );
    let seen = match leaked.first() {
        Some((p, fd)) => {
            format!("process {p} holds it as fd {fd}: /proc/{p}/fd/{fd}")
        }
        None => "none".to_string(),
    };
    check!(
        lab,
        "no_leak",
        !execd.is_empty() && leaked.is_empty(),
        "no exec'd program holds a descriptor of the secret (seen: {seen})"
    );
    exited_cleanly(lab, end);
}

/// exec-replace, run 1: the launcher's own pid runs the program, without a child, with the
/// greeting in its environment, and SIGTERM sent to that pid ends the program. Run 2: a
/// missing program gives status 127.
pub fn replace(lab: &mut Lab, obs: &mut Observer) {
    lab.section("exec-replace 1: ex-exec-replace sleep 30");
    let pid = obs.spawn(&["sleep".into(), "30".into()]);
    let sleeper = |tl: &crate::timeline::Timeline| {
        let mut all = tl.descendants_of(pid);
        all.extend(tl.get(pid));
        let p = all.into_iter().find(|p| {
            p.running() && p.exes.last().is_some_and(|e| e.ends_with("/sleep"))
        });
        p.map(|p| p.pid)
    };
    let runs = obs.until(Duration::from_secs(5), sleeper);
    let children = obs.view(|tl| tl.children_of(pid).len());
    let env = runs
        .and_then(|p| std::fs::read(format!("/proc/{p}/environ")).ok())
        .unwrap_or_default();
    let greeted = env.split(|&b| b == 0).any(|kv| kv == b"PROCLAB_GREETING=hello");
    let runs_in = runs.map_or("nowhere".to_string(), |p| format!("process {p}"));
    observe!(
        lab,
        "program",
        "sleep runs in {runs_in}; your launcher is {pid}",
        runs_in,
        pid
    );
    check!(
        lab,
        "same_pid",
        runs == Some(pid),
        "the launcher's own pid runs sleep (seen: sleep in {runs_in})"
    );
    check!(
        lab,
        "no_child",
        children == 0,
        "the launcher starts no child process (seen: {children})"
    );
    check!(
        lab,
        "greeting",
        greeted,
        "sleep's environment holds PROCLAB_GREETING=hello (seen: {greeted})"
    );
    obs.signal(pid, Signal::SIGTERM);
    let end = obs.end_of(pid, Duration::from_secs(3));
    let gone = |tl: &crate::timeline::Timeline| sleeper(tl).is_none().then_some(());
    let left = obs.until(Duration::from_millis(500), gone).is_none();
    let how = end.map_or("still running".to_string(), |e| e.status.to_string());
    let reached =
        end.and_then(|e| e.status.signal()) == Some(Signal::SIGTERM) && !left;
    check!(
        lab,
        "sigterm_reaches",
        reached,
        "SIGTERM sent to the launcher's pid ends sleep (seen: the launcher {how}; sleep \
         still running: {left})"
    );

    lab.section("exec-replace 2: ex-exec-replace proclab-no-such-program");
    let pid = obs.spawn(&["proclab-no-such-program".into()]);
    let end = obs.end_of(pid, Duration::from_secs(5));
    let how = end.map_or("it did not end".to_string(), |e| e.status.to_string());
    let code = end.and_then(|e| e.status.code());
    check!(
        lab,
        "not_found_127",
        code == Some(127),
        "a program that cannot be run gives status 127, as in a shell (seen: {how})"
    );
}
