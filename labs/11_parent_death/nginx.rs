//! Section 5, nginx: the observer starts a real nginx (a master and two workers, on
//! 127.0.0.1, from a temporary prefix), kills the master with SIGKILL, and asks the
//! workers for a page. nginx's workers do not watch their master: they live on, and
//! keep serving. Skipped, with a note, where nginx is not installed.

use crate::fate::{self, Fate};
use crate::nginx_run;
use crate::summary::Way;
use crate::{Args, Scenario};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::getpid;
use proclab::lifeline::Lifeline;
use proclab::{check, observe, Lab, OrDie};
use std::time::Duration;

pub fn run(lab: &mut Lab, args: &Args, lifeline: &Lifeline) -> Option<Way> {
    lab.section("5. nginx: kill -9 the master");
    let Some(bin) = proclab::nginx::find() else {
        let why =
            "nginx is not installed (apt-get install nginx to run this section)";
        observe!(lab, "nginx", "{why}: skipped", installed = false);
        if args.scenario == Scenario::Nginx {
            lab.not_observed("nginx_workers_survive", why); // it was asked for
        }
        return None;
    };
    let version = proclab::nginx::version(&bin);
    let killpg_instead = proclab::test_removes("nginx_killpg"); // tests only
    let nginx = match nginx_run::start(&bin, lifeline) {
        Ok(n) => n,
        Err(log) => {
            observe!(
                lab,
                "nginx",
                "{version} did not start ({log}): this section is skipped",
                installed = true,
                started = false,
                version,
                log
            );
            return None;
        }
    };
    let (master, workers, port) = (nginx.master, nginx.workers.clone(), nginx.port);
    let worker_pids: Vec<i32> = workers.iter().map(|w| w.as_raw()).collect();
    observe!(
        lab,
        "nginx",
        "{version} is up on 127.0.0.1:{port}: master {master_pid}, workers \
         {worker_pids:?}; the lab's sentinel {sentinel_pid} kills nginx's group if \
         the lab dies",
        installed = true,
        started = true,
        version,
        port,
        master_pid = master.as_raw(),
        workers = worker_pids,
        sentinel_pid = nginx.sentinel.as_raw()
    );
    std::thread::sleep(Duration::from_millis(args.hold_ms)); // so a person can look
    lab.show_tree(getpid());
    // ANCHOR: kill_master
    if killpg_instead {
        killpg(master, Signal::SIGKILL).or_die("killpg"); // tests only: the group
    } else {
        kill(master, Signal::SIGKILL).or_die("kill"); // `kill -9 <nginx master>`
    }
    let master_end = fate::reap_parent(lab, "nginx", &[master], Signal::SIGKILL);
    std::thread::sleep(Duration::from_millis(args.linger_ms));
    let fates: Vec<Fate> = workers.iter().map(|&w| fate::look(w)).collect();
    // Does anyone still serve?
    let answered_by = nginx_run::get(port);
    // ANCHOR_END: kill_master
    fate::observe(lab, "nginx", "worker", master, &workers, &fates);
    lab.show_tree(getpid());
    let by = answered_by.map_or("nobody".to_string(), |p| format!("worker {p}"));
    observe!(
        lab,
        "nginx_request",
        "after the kill, GET http://127.0.0.1:{port}/ was answered by {by}",
        port,
        answered_by
    );
    let n = workers.len();
    let me = getpid();
    let alive = fates.iter().filter(|f| f.alive_under(me)).count();
    let held = check!(
        lab,
        "nginx_workers_survive",
        master_end.signal() == Some(Signal::SIGKILL)
            && alive == n
            && answered_by.is_some_and(|p| worker_pids.contains(&p)),
        "nginx's master died of SIGKILL and {alive} of {n} workers lived on, \
         re-parented to the observer, and still answered on port {port}"
    );
    for &w in &workers {
        fate::end_survivor(lab, "nginx", w); // SIGTERM: nginx's fast shutdown
    }
    nginx.stop(); // whatever is left of its group, and the sentinel
    Some(Way {
        name: "5 nginx",
        parent_death: "SIGKILL to the master",
        children: fate::tally(&fates),
        died_with_it: alive == 0,
        held,
        lesson:
            "nginx's workers outlive a kill -9 of their master, and keep serving",
    })
}
