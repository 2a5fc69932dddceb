//! Demo section 6, slow heads (slowloris): two hundred clients each send a request head one
//! byte every 200 ms and never finish it. Without a deadline they hold the blocking workers
//! for as long as they like; with mod_reqtimeout's rule each is cut on time, with a 408,
//! but there are always more of them than workers: that is the honest limit.

use crate::read::Timing;
use crate::siege::{defences_off, describe, siege, Demo, Server};
use proclab::{check, observe, Lab};
use std::time::Duration;

pub fn run(lab: &mut Lab, d: &Demo) {
    lab.section(
        "6. Slow heads (slowloris): clients that never finish their request",
    );
    d.note_limits(lab);
    let keep_on = proclab::test_removes("defences_stay_on"); // tests only
    let off = if keep_on { d.on } else { defences_off() };
    let (slow, n) = (d.slow, d.workers);
    let bare = Server::start(lab, d, off);
    let held = siege(&bare, d.plan(bare.port, false, true));
    bare.stop(lab);
    let (share, free, cut) = (held.out.share(), held.free, held.out.slow_cut.len());
    let queued = held.server.queued;
    observe!(lab, "slow_off", "no defence: with {slow} slow heads arriving, {free} of {n} \
        workers were free and {queued} connections waited in the accept queue; the server \
        cut {cut} of them; the probe got {share:.1}% of its requests answered",
        slow, free, n, queued, cut, share);
    check!(lab, "slow_holds", share < 50.0 && free == 0 && cut == 0,
        "with no deadline, slow heads hold every worker for as long as they like: {cut} \
         cut, {share:.1}% of the probe's requests answered", cut, share);

    // ANCHOR: slow_on
    let defended = Server::start(lab, d, d.on);
    let s = siege(&defended, d.plan(defended.port, false, true));
    defended.stop(lab);
    let cuts = &s.out.slow_cut;
    let answered_408 = cuts.iter().filter(|c| c.status == Some(408)).count();
    let held_ms = cuts.iter().filter_map(|c| c.held_ms).max();
    let first_cut = cuts.iter().map(|c| c.lived).min();
    // ANCHOR_END: slow_on
    let (timing, _) = d.on;
    let deadline = most(&timing);
    let deadline_ms = deadline.map(|d| d.as_millis() as u64);
    let first_cut_ms = first_cut.map(|t| t.as_millis() as u64);
    let (cut, share) = (cuts.len(), s.out.share());
    let text = |v: Option<u64>| v.map_or("-".into(), |ms| format!("{ms} ms"));
    let (held, most_ms, first) =
        (text(held_ms), text(deadline_ms), text(first_cut_ms));
    observe!(lab, "slow_on", "defended ({defences}): {cut} slow heads cut during \
        the attack, {answered_408} of them with a 408; the workers held each at most \
        {held} (the rule allows {most_ms} at most); the first cut came {first} after its \
        connect",
        defences = describe(d.on), cut, attack_ms = d.run.as_millis() as u64,
        answered_408, held, most_ms, first, held_ms, deadline_ms, first_cut_ms);
    let margin = Duration::from_millis(100);
    let on_time = match (deadline, held_ms, first_cut) {
        (Some(d), Some(h), Some(f)) => {
            h <= (d + margin).as_millis() as u64 && f <= d + 5 * margin
        }
        _ => false,
    };
    check!(lab, "slow_cut_in_time", on_time && answered_408 == cut && cut >= n,
        "every slow head the workers took was cut with a 408 within its deadline (plus \
         100 ms as the worker saw it, 500 ms as the client saw it)");

    let (queued, free) = (s.server.queued, s.free);
    observe!(lab, "slow_limit", "yet with {slow} slow heads for {n} workers, {queued} \
        connections waited in the accept queue mid-attack and {free} workers were free: \
        the probe got {share:.1}% of its requests answered; each cut frees a worker for \
        the next slow head in the queue, not for the normal client behind it",
        slow, n, queued, free, share);
    check!(lab, "slow_exhausts_workers", share < 50.0 && queued > n as u64,
        "the honest limit of blocking workers: enough slow clients exhaust them even with \
         every deadline ({share:.1}% answered, {queued} connections queued for {n} \
         workers)", share, queued, n);
}

/// The longest a head may take under `t` (None: no deadline).
fn most(t: &Timing) -> Option<Duration> {
    t.head.map(|h| h.max(t.head_max))
}
