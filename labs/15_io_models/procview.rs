//! What the kernel says about a server (plumbing): its processes and threads, its memory
//! (summed PSS, plus a kernel stack per thread, which PSS does not count), the
//! connections it holds (socket descriptors), and those still waiting in its listening
//! socket's accept queue (/proc/net/tcp); and what one kernel stack costs.

use proclab::procfacts;
use std::collections::HashSet;
use std::io::BufRead;

/// One look at a server.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub pids: Vec<i32>,
    pub threads: u64,
    /// Summed PSS of its processes + threads x one kernel stack, in KiB: the memory
    /// figure of the tables.
    pub mem_kib: f64,
    /// Accepted connections: socket descriptors other than listening sockets.
    pub held: usize,
    /// Connections in the kernel's accept queues, not yet accepted.
    pub queued: u64,
    /// Where the first worker sleeps (/proc/PID/wchan).
    pub wchan: String,
}

/// Look at the server whose top process is `top`, listening on `port`.
pub fn server(top: i32, port: u16, kstack_kib: f64) -> Facts {
    let pids: Vec<i32> = procfacts::tree(top).iter().map(|r| r.pid).collect();
    let (listeners, queued) = listening(port);
    let mut held = HashSet::new();
    let (mut threads, mut pss_kib) = (0, 0);
    for (i, &pid) in pids.iter().enumerate() {
        threads += procfacts::facts(pid).map_or(0, |f| f.threads.max(0) as u64);
        pss_kib += procfacts::pss_kib(pid).unwrap_or(0);
        if i > 0 || pids.len() == 1 {
            // A master (prefork's, the loops') holds no client's connection.
            held.extend(
                sockets(pid).into_iter().filter(|i| !listeners.contains(i)),
            );
        }
    }
    let worker = pids.get(1).or(pids.first()).copied().unwrap_or(top);
    let wchan = newest_thread_wchan(worker).unwrap_or_else(|| "-".into());
    let mem_kib = pss_kib as f64 + threads as f64 * kstack_kib;
    Facts { pids, threads, mem_kib, held: held.len(), queued, wchan }
}

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

/// Where the newest thread of `pid` sleeps: a worker thread of a pool, the main thread
/// of a single-threaded process (/proc/PID/task/TID/wchan).
fn newest_thread_wchan(pid: i32) -> Option<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let tid = tasks
        .flatten()
        .filter_map(|t| t.file_name().to_str()?.parse::<i32>().ok())
        .max()?;
    let w =
        std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/wchan")).ok()?;
    (!w.is_empty() && w != "0").then_some(w)
}

/// The inodes of the sockets among `pid`'s descriptors.
fn sockets(pid: i32) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// The listening sockets on `port` (their inodes) and their accept queues, summed.
/// /proc/net/tcp lists listening sockets first; for them, rx_queue is the number of
/// connections the kernel has completed and nobody has accepted yet.
fn listening(port: u16) -> (HashSet<u64>, u64) {
    let (mut inodes, mut queued) = (HashSet::new(), 0);
    let Ok(f) = std::fs::File::open("/proc/net/tcp") else {
        return (inodes, queued);
    };
    for line in std::io::BufReader::new(f).lines().skip(1).map_while(Result::ok) {
        let Some(row) = TcpRow::parse(&line) else { continue };
        if !row.listening {
            break; // the established ones follow
        }
        if row.port == port {
            inodes.insert(row.inode);
            queued += row.rx_queue;
        }
    }
    (inodes, queued)
}

/// One line of /proc/net/tcp, the fields used here.
#[derive(Debug, PartialEq)]
struct TcpRow {
    port: u16,
    listening: bool,
    rx_queue: u64,
    inode: u64,
}

impl TcpRow {
    fn parse(line: &str) -> Option<TcpRow> {
        let f: Vec<&str> = line.split_whitespace().collect();
        let port = u16::from_str_radix(f.get(1)?.split(':').nth(1)?, 16).ok()?;
        let listening = *f.get(3)? == "0A"; // TCP_LISTEN
        let rx_queue =
            u64::from_str_radix(f.get(4)?.split(':').nth(1)?, 16).ok()?;
        Some(TcpRow { port, listening, rx_queue, inode: f.get(9)?.parse().ok()? })
    }
}

/// One try: start `k` threads that sleep, and divide what KernelStack grew by.
fn one_try(k: usize) -> f64 {
    // ANCHOR: kernel_stack
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let before = procfacts::meminfo_field("KernelStack:").unwrap_or(0);
    let sleepers: Vec<_> = (0..k)
        .map(|_| {
            let rx = rx.clone(); // each sleeps on the lock, or in recv
            std::thread::spawn(move || drop(rx.lock().map(|r| r.recv())))
        })
        .collect();
    let after = procfacts::meminfo_field("KernelStack:").unwrap_or(0);
    drop(tx); // every sleeper wakes up and ends
    sleepers.into_iter().for_each(|t| drop(t.join()));
    // ANCHOR_END: kernel_stack
    after.saturating_sub(before) as f64 / k as f64
}

/// One kernel stack, in KiB, and how it was found: the median of three tries with
/// 512 threads (16 KiB, x86-64's and arm64's THREAD_SIZE, if that makes no sense).
pub fn kernel_stack() -> (f64, String) {
    let k = 512;
    let mut tries: Vec<f64> = (0..3).map(|_| one_try(k)).collect();
    tries.sort_by(f64::total_cmp);
    let kib = tries[1].round();
    if (4.0..=64.0).contains(&kib) {
        let how = format!(
            "KernelStack in /proc/meminfo grew by {kib} KiB a thread \
            (median of 3 tries of {k} sleeping threads)"
        );
        (kib, how)
    } else {
        let how = format!(
            "KernelStack in /proc/meminfo moved by {:.1} KiB a thread, \
            not a stack size: 16 KiB assumed (x86-64's and arm64's THREAD_SIZE)",
            tries[1]
        );
        (16.0, how)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_listening_and_an_established_line() {
        let l =
            "   0: 0100007F:1F90 00000000:0000 0A 00000000:000003E5 00:00000000 \
            00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0";
        let want =
            TcpRow { port: 8080, listening: true, rx_queue: 997, inode: 4242 };
        assert_eq!(TcpRow::parse(l), Some(want));
        let e =
            "   7: 0100007F:1F90 0100007F:A1B2 01 00000000:00000000 00:00000000 \
            00000000  1000        0 4343 1 0000000000000000 20 4 30 10 -1";
        let row = TcpRow::parse(e).unwrap();
        assert!(!row.listening && row.port == 8080 && row.inode == 4343);
        assert_eq!(TcpRow::parse("  sl  local_address rem_address"), None);
    }

    #[test]
    fn a_kernel_stack_is_a_few_pages() {
        let (kib, how) = kernel_stack();
        assert!((4.0..=64.0).contains(&kib), "{kib}: {how}");
    }
}
