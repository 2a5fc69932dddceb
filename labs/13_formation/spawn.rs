//! The manager's processes: the Procfile and the formation made into processes (their
//! PS, PORT, environment and argv), and how one of them is started: fork and exec,
//! with its stdout and stderr into two pipes.

use crate::events::Event;
use crate::exec::Strings;
use crate::manager::{fail, ManageArgs, Proc};
use crate::procfile;
use crate::streams::Streams;
use nix::unistd::{fork, getpid, pipe2, setpgid, ForkResult};
use proclab::clock::now_ns;
use proclab::lifeline::die_with_parent;
use proclab::test_removes;
use std::os::fd::AsRawFd;

/// The processes of the formation, with their PORT, environment and argv.
pub fn plan(a: &ManageArgs) -> Vec<Proc> {
    let text = std::fs::read_to_string(&a.procfile)
        .unwrap_or_else(|e| fail(&format!("{e}")));
    let types = procfile::parse(&text);
    let counts =
        procfile::formation(&a.formation, &types).unwrap_or_else(|e| fail(&e));
    let base: Vec<(String, String)> =
        std::env::vars().filter(|(k, _)| k != "PS" && k != "PORT").collect();
    let one_port = test_removes("one_port"); // tests only: every process gets the base port
    let mut out = Vec::new();
    for (t, n) in counts {
        for i in 1..=n {
            let name = format!("{}.{i}", types[t].name);
            let port =
                if one_port { a.port } else { procfile::port_for(a.port, t, i) };
            let mut env = base.clone();
            env.extend([
                ("PS".into(), name.clone()),
                ("PORT".into(), port.to_string()),
            ]);
            let argv = Strings::new(procfile::argv(&types[t].command, &env));
            let env =
                Strings::new(env.into_iter().map(|(k, v)| format!("{k}={v}")));
            let (pid, adopted, starts, due, done) =
                (None, false, Vec::new(), None, false);
            out.push(Proc {
                name,
                port,
                argv,
                env,
                pid,
                adopted,
                starts,
                due,
                done,
            });
        }
    }
    out
}

/// fork and exec one process of the formation, its stdout and stderr into two pipes.
pub fn spawn(p: &mut Proc, io: &mut Streams) {
    let pipes =
        (pipe2(nix::fcntl::OFlag::O_CLOEXEC), pipe2(nix::fcntl::OFlag::O_CLOEXEC));
    let (Ok((out_r, out_w)), Ok((err_r, err_w))) = pipes else { fail("pipe2") };
    let (me, out, err) = (getpid().as_raw(), out_w.as_raw_fd(), err_w.as_raw_fd());
    // SAFETY: the child makes async-signal-safe calls only, on data built before fork.
    match unsafe { fork() } {
        // ANCHOR: spawn
        Ok(ForkResult::Child) => unsafe {
            die_with_parent(me); // the manager's death, even by SIGKILL, ends it
            libc::setpgid(0, 0); // a group of its own: Ctrl-C reaches only the manager
            libc::dup2(out, 1); // what it prints comes to us, line by line
            libc::dup2(err, 2);
            libc::dup2(libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY), 0);
            let none: libc::sigset_t = std::mem::zeroed(); // the mask we blocked: undo
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            libc::execve(p.argv.first(), p.argv.array(), p.env.array());
            libc::_exit(127)
        },
        Ok(ForkResult::Parent { child }) => {
            let _ = setpgid(child, child); // whichever of the two runs first
            (p.pid, p.adopted) = (Some(child), false);
            p.starts.push(now_ns());
            io.add(&p.name, out_r, err_r); // our copies of the write ends close here
            let (name, pid, port) = (p.name.clone(), child.as_raw(), p.port);
            io.system(&Event::Started { name, pid, port });
        }
        // ANCHOR_END: spawn
        Err(e) => fail(&format!("fork: {e}")),
    }
}
