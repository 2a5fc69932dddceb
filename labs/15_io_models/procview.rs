//! What the kernel says about a server (plumbing): its processes and threads, its memory
//! (summed PSS, plus a kernel stack per thread, which PSS does not count), the
//! connections it holds (socket descriptors), and those still waiting in its listening
//! socket's accept queue (/proc/net/tcp); and what one kernel stack costs. Its CPU is
//! in cpuview.rs.

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
