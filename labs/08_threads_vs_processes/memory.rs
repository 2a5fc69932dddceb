//! Reading a group's memory from /proc: RSS and PSS from smaps_rollup, page tables
//! (VmPTE) from status, and which threads of a process sleep inside read(2).

use proclab::procfacts::{smaps_rollup_field, status_field};

/// Memory of a set of processes, summed, in KiB.
#[derive(Clone, Copy, Debug)]
pub struct Mem {
    pub rss: i64,
    pub pss: i64,
    pub pte: i64,
}

impl Mem {
    pub fn minus(&self, o: &Mem) -> Mem {
        Mem { rss: self.rss - o.rss, pss: self.pss - o.pss, pte: self.pte - o.pte }
    }
}

/// RSS, PSS and page tables of `pids`, summed.
pub fn memory_of(pids: &[i32]) -> Mem {
    let mut m = Mem { rss: 0, pss: 0, pte: 0 };
    let kib = |v: Option<u64>| v.unwrap_or(0) as i64;
    for &pid in pids {
        m.rss += kib(smaps_rollup_field(pid, "Rss:"));
        m.pss += kib(smaps_rollup_field(pid, "Pss:"));
        m.pte += kib(status_field(pid, "VmPTE:"));
    }
    m
}

/// True if thread `tid` of `pid` sleeps (state S) inside read(2): the first field of
/// /proc/PID/task/TID/syscall is the number of the call it is blocked in (0, read, on
/// x86-64; "running" when it is not blocked). Where that file cannot be read (it needs
/// ptrace rights), its wchan (the kernel function it sleeps in) names a pipe read.
pub fn asleep_in_read(pid: i32, tid: i32) -> bool {
    let task = format!("/proc/{pid}/task/{tid}");
    let file = |f: &str| std::fs::read_to_string(format!("{task}/{f}"));
    let asleep = file("stat").ok().and_then(|s| {
        s.rsplit(')').next().map(|r| r.trim_start().starts_with('S'))
    });
    let in_read = match file("syscall") {
        Ok(s) => s.split_whitespace().next() == Some(&libc::SYS_read.to_string()),
        Err(_) => file("wchan").is_ok_and(|w| w.contains("pipe_read")),
    };
    asleep == Some(true) && in_read
}

/// How many threads of `pid`, other than the main one, sleep inside read(2).
pub fn threads_in_read(pid: i32) -> usize {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|&tid| tid != pid && asleep_in_read(pid, tid))
        .count()
}
