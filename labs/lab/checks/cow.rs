//! Checks of the copy-on-write exercises (chapter 12).

use crate::observer::Observer;
use proclab::{check, observe, procfacts, Lab};
use std::collections::BTreeMap;
use std::time::Duration;

/// The checksum the child must find: the low 16 bits of every entry, added up.
fn checksum(seed: u64) -> u64 {
    (0..8u64 << 20).fold(0u64, |s, i| {
        s.wrapping_add((i.wrapping_mul(seed) ^ (i >> 3)) & 0xffff)
    })
}

/// cow-read-only: the exit status is the checksum's low 8 bits, and the child's private
/// memory (smaps_rollup) and page faults (the parent's cminflt) stay small.
pub fn read_only(lab: &mut Lab, obs: &mut Observer) {
    let seed = proclab::clock::now_ns() / 1000 % 100_000 * 2 + 3;
    let expected = (checksum(seed) % 256) as i32;
    let pid = obs.spawn(&[seed.to_string()]);
    // The child's anonymous memory (RssAnon counts a page once per process, shared or
    // not: a copy of the table adds 64 MiB) and, for the human line, its private part.
    let (mut anon, mut private) = (BTreeMap::new(), BTreeMap::new());
    let end = obs.until(Duration::from_secs(60), |tl| {
        for k in tl.children_of(pid).iter().filter(|k| k.running()) {
            for (field, most) in
                [("RssAnon:", &mut anon), ("Private_Dirty:", &mut private)]
            {
                let kib = if field == "RssAnon:" {
                    procfacts::status_field(k.pid, field)
                } else {
                    procfacts::smaps_rollup_field(k.pid, field)
                };
                if let Some(kib) = kib {
                    let m = most.entry(k.pid).or_insert(0);
                    *m = kib.max(*m);
                }
            }
        }
        tl.get(pid).and_then(|p| p.end)
    });
    let forked = obs.view(|tl| tl.children_of(pid).len());
    let anon_kib = anon.values().copied().max().unwrap_or(0);
    let most_kib = private.values().copied().max().unwrap_or(0);
    let faults = end.map_or(0, |e| e.cminflt);
    observe!(
        lab,
        "child",
        "your program forked {forked} child(ren); the child's anonymous memory reached \
         {anon_kib} KiB (its private part {most_kib} KiB), and it made {faults} page \
         faults (the table is 65536 KiB, 16384 pages)",
        forked,
        anon_kib,
        most_kib,
        faults
    );
    check!(lab, "forked", forked >= 1, "a child is forked (seen: {forked})");
    let how = end.map_or("it did not end".to_string(), |e| e.status.to_string());
    check!(
        lab,
        "answer",
        end.and_then(|e| e.status.code()) == Some(expected),
        "your program exits with the checksum's low 8 bits (expected {expected}; seen: \
         {how})"
    );
    check!(
        lab,
        "no_copy",
        forked >= 1 && faults < 4096 && anon_kib < (64 + 8) << 10,
        "the child copies almost nothing: under 4096 page faults (each copy-on-write copy \
         or new page is one), and at most 8 MiB of memory besides the table it shares \
         (seen: {faults} faults, {anon_kib} KiB)"
    );
}
