//! A wrong solution of pool-retry: the dead worker is reaped and replaced, but the
//! replacement gets the next task of the queue; the one in the dead worker's hands is never
//! retried, and its result is missing. The check `results` fails.

use nix::poll::{poll, PollFd, PollFlags};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, pipe, read, write, ForkResult, Pid};
use proclab::say_as;
use std::collections::{BTreeMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;
use proclab::_exit;

struct Worker {
    pid: Pid,
    tasks: OwnedFd,
    results: OwnedFd,
    /// The task it has in hand.
    busy: Option<u32>,
}

/// A worker: read a task number, work 200 ms, write back (task, result); end at EOF.
fn work(tasks: OwnedFd, results: OwnedFd) -> ! {
    let mut task = [0u8; 4];
    while let Ok(4) = read(&tasks, &mut task) {
        let i = u32::from_le_bytes(task);
        std::thread::sleep(Duration::from_millis(200));
        let mut msg = [0u8; 8];
        msg[..4].copy_from_slice(&task);
        msg[4..].copy_from_slice(&(i * 7919 % 1000).to_le_bytes());
        let _ = write(&results, &msg);
    }
    _exit(0)
}

fn start_worker() -> Worker {
    let (task_r, task_w) = pipe().expect("pipe");
    let (result_r, result_w) = pipe().expect("pipe");
    // SAFETY: the worker only reads, sleeps, writes and calls _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            drop((task_w, result_r)); // the master's ends
            work(task_r, result_w)
        }
        ForkResult::Parent { child } => {
            say_as!("master", "started worker {child}");
            Worker { pid: child, tasks: task_w, results: result_r, busy: None }
        }
    }
}

/// Give `w` the next task of `queue`, if there is one.
fn hand(w: &mut Worker, queue: &mut VecDeque<u32>) {
    if let Some(i) = queue.pop_front() {
        write(&w.tasks, &i.to_le_bytes()).expect("write a task");
        w.busy = Some(i);
    }
}

pub fn main() {
    let mut queue: VecDeque<u32> = (0..12).collect();
    let mut workers: Vec<Worker> = (0..3).map(|_| start_worker()).collect();
    workers.iter_mut().for_each(|w| hand(w, &mut queue));
    let mut results = BTreeMap::new();
    while workers.iter().any(|w| w.busy.is_some()) {
        let mut fds: Vec<PollFd> =
            workers.iter().map(|w| PollFd::new(w.results.as_fd(), PollFlags::POLLIN)).collect();
        poll(&mut fds, 5000u16).expect("poll");
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
        for k in (0..workers.len()).rev().filter(|&k| ready[k]) {
            let mut msg = [0u8; 8];
            if let Ok(8) = read(&workers[k].results, &mut msg) {
                let i = u32::from_le_bytes(msg[..4].try_into().unwrap());
                results.insert(i, u32::from_le_bytes(msg[4..].try_into().unwrap()));
                workers[k].busy = None;
                hand(&mut workers[k], &mut queue);
                continue;
            }
            // End of file: the worker died, with `workers[k].busy` in hand.
            say_as!("master", "worker {} died", workers[k].pid);
            let status = waitpid(workers[k].pid, None).expect("waitpid");
            say_as!("master", "reaped it ({status:?}); starting a replacement");
            workers[k] = start_worker();
            hand(&mut workers[k], &mut queue);
        }
    }
    let pids: Vec<Pid> = workers.iter().map(|w| w.pid).collect();
    drop(workers); // end of file on every task pipe: the workers leave
    for pid in pids {
        waitpid(pid, None).expect("waitpid");
    }
    for (i, r) in &results {
        println!("task {i} = {r}");
    }
    std::process::exit(if results.len() == 12 { 0 } else { 1 })
}
