//! Reading a group's memory from /proc: RSS and PSS from smaps_rollup, page tables
//! (VmPTE) from status, and which threads of a process sleep.

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

/// How many threads of `pid`, other than the main one, sleep (state S).
pub fn sleeping_threads(pid: i32) -> usize {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|&tid| tid != pid)
        .filter(|tid| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit(')').next().map(|r| r.trim_start().starts_with('S'))
                })
                .unwrap_or(false)
        })
        .count()
}
