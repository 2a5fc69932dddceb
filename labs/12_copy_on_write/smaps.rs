//! One mapping's lines of /proc/PID/smaps: how much of it is resident, its proportional
//! share, how much is shared or private (all dirty: the parent wrote every page), and
//! how much is mapped by huge pages.

use proclab::{observe, Lab};
use std::fmt;

/// Field values (KiB) of one mapping in /proc/PID/smaps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Smaps {
    pub rss: u64,
    pub pss: u64,
    pub shared_dirty: u64,
    pub private_dirty: u64,
    /// How much of it is mapped as 2 MiB huge pages (`--huge`).
    pub anon_huge: u64,
}

impl Smaps {
    /// The fields of the mapping of `pid` that starts at `addr`.
    pub fn of(pid: i32, addr: usize) -> Smaps {
        let path = format!("/proc/{pid}/smaps");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        parse(&text, addr)
    }

    /// Observe it: the mapping of the region in `who`'s smaps at `phase`.
    pub fn observe(
        &self,
        lab: &mut Lab,
        phase: &str,
        who: &str,
        pid: i32,
        region_kib: u64,
    ) {
        observe!(
            lab,
            "smaps",
            "{who:<6} {pid}: {self}",
            forked = who == "child" && phase == "after_fork",
            phase,
            who,
            pid,
            region_kib,
            rss = self.rss,
            pss = self.pss,
            shared_dirty = self.shared_dirty,
            private_dirty = self.private_dirty,
            anon_huge_kib = self.anon_huge
        );
    }

    /// A row of the lab's table: `who`, then the four fields.
    pub fn row(&self, who: &str) -> Vec<String> {
        let f = [self.rss, self.pss, self.shared_dirty, self.private_dirty];
        std::iter::once(who.to_string()).chain(f.map(|v| v.to_string())).collect()
    }
}

impl fmt::Display for Smaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "region Rss {} KiB, Pss {} KiB, Shared_Dirty {} KiB, Private_Dirty {} KiB",
            self.rss, self.pss, self.shared_dirty, self.private_dirty
        )?;
        match self.anon_huge {
            0 => Ok(()),
            kib => write!(f, ", AnonHugePages {kib} KiB"),
        }
    }
}

fn parse(text: &str, addr: usize) -> Smaps {
    let head = format!("{addr:x}-");
    let mut m = Smaps::default();
    let mut inside = false;
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            inside = line.starts_with(&head); // a new mapping's header line
            continue;
        }
        if !inside {
            continue;
        }
        let value = || {
            line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        match first {
            "Rss:" => m.rss = value(),
            "Pss:" => m.pss = value(),
            "Shared_Dirty:" => m.shared_dirty = value(),
            "Private_Dirty:" => m.private_dirty = value(),
            "AnonHugePages:" => m.anon_huge = value(),
            _ => {}
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_of_the_mapping_at_addr_only() {
        let text = "\
7f00-7f10 rw-p 00000000 00:00 0
Rss:                  64 kB
Pss:                  32 kB
Shared_Dirty:         64 kB
Private_Dirty:         0 kB
7f10-7f20 rw-p 00000000 00:00 0
Rss:                   4 kB
Private_Dirty:         4 kB
";
        let m = parse(text, 0x7f00);
        assert_eq!(
            m,
            Smaps {
                rss: 64,
                pss: 32,
                shared_dirty: 64,
                private_dirty: 0,
                anon_huge: 0
            }
        );
        assert_eq!(parse(text, 0x7f10).private_dirty, 4);
        assert_eq!(parse(text, 0x1234), Smaps::default());
    }
}
