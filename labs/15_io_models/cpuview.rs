//! CPU from the kernel's accounting (plumbing): the CPU clock of a set of processes, what
//! the rest of the machine used meanwhile (/proc/stat), and what a blocking server's
//! workers are doing at one instant (asleep in the wait, or on a CPU).

use proclab::procfacts;

/// The CPU time the processes `pids` have used, in ns, all their threads (those that
/// have ended too): each process's CPU clock (clock_getcpuclockid).
pub fn cpu_ns(pids: &[i32]) -> u64 {
    let mut total = 0;
    for &pid in pids {
        let mut clock: libc::clockid_t = 0;
        let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: both calls write into the locals; a gone pid is an error, skipped.
        let ok = unsafe {
            libc::clock_getcpuclockid(pid, &mut clock) == 0
                && libc::clock_gettime(clock, &mut t) == 0
        };
        if ok {
            total += t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64;
        }
    }
    total
}

/// What a server's workers are doing now, counted: (in the waiting part of a request,
/// asleep in nanosleep; on the CPU, running or runnable). Workers are the threads of a
/// pool but its main one, the processes of prefork but its master; the rest of them
/// wait for a client (in accept, or in poll for a request).
pub fn workers_now(top: i32) -> (usize, usize) {
    let pids: Vec<i32> = procfacts::tree(top).iter().map(|r| r.pid).collect();
    let tasks: Vec<String> = if pids.len() > 1 {
        pids[1..].iter().map(|p| format!("/proc/{p}")).collect()
    } else {
        let dir = std::fs::read_dir(format!("/proc/{top}/task")).ok();
        let tids = dir.into_iter().flatten().flatten();
        let tids = tids.filter_map(|t| t.file_name().into_string().ok());
        tids.filter(|t| *t != top.to_string())
            .map(|t| format!("/proc/{top}/task/{t}"))
            .collect()
    };
    let (mut waiting, mut on_cpu) = (0, 0);
    for t in &tasks {
        let stat = std::fs::read_to_string(format!("{t}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().and_then(|r| r.trim().chars().next());
        match state {
            Some('R') => on_cpu += 1,
            Some('S') if in_nanosleep(t) => waiting += 1,
            _ => {}
        }
    }
    (waiting, on_cpu)
}

/// What the rest of the machine does meanwhile: the CPU time of every CPU that was not
/// idle (/proc/stat), less the lab's own (its CPU clock) and its servers'.
pub struct Others {
    since: std::time::Instant,
    machine_ns: u64,
    lab_ns: u64,
}

impl Others {
    pub fn start() -> Others {
        let (machine_ns, lab_ns) =
            (machine_busy_ns(), cpu_ns(&[std::process::id() as i32]));
        Others { since: std::time::Instant::now(), machine_ns, lab_ns }
    }

    /// How many cores other programs kept busy on average, given the CPU time that the
    /// lab's servers used meanwhile.
    pub fn cores(&self, servers_ns: u64) -> f64 {
        let machine = machine_busy_ns().saturating_sub(self.machine_ns);
        let lab = cpu_ns(&[std::process::id() as i32]).saturating_sub(self.lab_ns);
        let rest = machine.saturating_sub(lab + servers_ns);
        rest as f64 / self.since.elapsed().as_nanos().max(1) as f64
    }
}

/// Busy CPU time of the whole machine so far, in ns: the first line of /proc/stat,
/// every column but idle and iowait, in clock ticks.
fn machine_busy_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    let busy: u64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    busy * (1_000_000_000 / hz)
}

/// True if the task at `/proc/...` `t` is blocked in nanosleep or clock_nanosleep: the
/// number /proc/TID/syscall starts with, or where that is not readable (it needs
/// ptrace rights), the kernel function of /proc/TID/wchan.
fn in_nanosleep(t: &str) -> bool {
    let sleeps = [libc::SYS_nanosleep, libc::SYS_clock_nanosleep];
    match std::fs::read_to_string(format!("{t}/syscall")) {
        Ok(s) => s
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .is_some_and(|n: i64| sleeps.contains(&n)),
        Err(_) => std::fs::read_to_string(format!("{t}/wchan"))
            .is_ok_and(|w| w.contains("nanosleep")),
    }
}
