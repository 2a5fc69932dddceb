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
    let mut private = BTreeMap::new();
    let end = obs.until(Duration::from_secs(60), |tl| {
        for k in tl.children_of(pid).iter().filter(|k| k.running()) {
            if let Some(kib) =
                procfacts::smaps_rollup_field(k.pid, "Private_Dirty:")
            {
                let m = private.entry(k.pid).or_insert(0);
                *m = kib.max(*m);
            }
        }
        tl.get(pid).and_then(|p| p.end)
    });
    let forked = obs.view(|tl| tl.children_of(pid).len());
    let most_kib = private.values().copied().max().unwrap_or(0);
    let faults = end.map_or(0, |e| e.cminflt);
    observe!(
        lab,
        "child",
        "your program forked {forked} child(ren); the child's private memory reached \
         {most_kib} KiB, and it made {faults} page faults (the table is 65536 KiB, 16384 \
         pages)",
        forked,
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
        forked >= 1 && most_kib < 8192 && faults < 4096,
        "the child copies almost nothing: under 8 MiB of private memory and 4096 page \
         faults (seen: {most_kib} KiB, {faults} faults)"
    );
}
