//! Demo section 5, idle connections: a thousand clients connect and never send a byte.
//! Without a defence each blocking worker takes one and waits for it, and a normal client
//! starves; with TCP_DEFER_ACCEPT the kernel holds them before `accept`, and a worker
//! closes the ones handed over silent. A kept-alive connection gets its own idle timeout.

use crate::client::{connect, read_response};
use crate::read::Timing;
use crate::siege::{
    best_of_3, defences_off, describe, siege, unharmed, Demo, Server, Siege,
};
use proclab::{check, observe, Lab, Nanos};
use std::io::{Read, Write as _};
use std::time::{Duration, Instant};

pub fn run(lab: &mut Lab, d: &Demo) {
    lab.section("5. Idle connections: clients that connect and never send a byte");
    d.note_limits(lab);
    // Tests only: the server meant to have no defence has them all.
    let keep_on = proclab::test_removes("defences_stay_on");
    let off = if keep_on { d.on } else { defences_off() };
    // ANCHOR: idle_off
    let bare = Server::start(lab, d, off);
    let starved = siege(&bare, d.plan(bare.port, true, false));
    // One request on a kept-alive connection, then silence: is it ever closed?
    let port = bare.port;
    let kept_off =
        std::thread::spawn(move || closed_after(port, Duration::from_secs(2)));
    // ANCHOR_END: idle_off
    let (idle, n) = (d.idle, d.workers);
    let (share, queued, free) =
        (starved.out.share(), starved.server.queued, starved.free);
    let served = answered(&starved);
    observe!(lab, "idle_off", "no defence ({defences}), {idle} idle connections: \
        mid-attack {free} of {n} workers free (in accept4), accept queue {queued}; the \
        probe got {served} ({share:.1}%)",
        defences = describe(off), idle, free, n, queued, served, share);
    check!(lab, "idle_starve", share < 50.0 && free == 0,
        "with no defence the idle connections hold every worker: {share:.1}% of the \
         probe's requests answered (below 50%), {free} workers free", share, free);

    // The worker's own first-byte deadline, without TCP_DEFER_ACCEPT.
    let (timing, _) = d.on;
    let alone = Server::start(lab, d, (Timing { deferred: false, ..timing }, 0));
    let waited = siege(&alone, d.plan(alone.port, true, false));
    alone.stop(lab);
    let (cut, share) = (waited.out.idle_cut.len(), waited.out.share());
    let (first, last) = lifetimes(&waited.out.idle_cut);
    let first_byte = timing
        .first_byte
        .map_or("none".into(), |f| format!("{} ms", f.as_millis()));
    observe!(
        lab,
        "idle_deadline",
        "the workers' own first-byte deadline \
        ({first_byte}, no TCP_DEFER_ACCEPT): {cut} idle connections cut, the first \
        {first} ms after its connect, one per worker per deadline; the probe got \
        {share:.1}% of its requests answered",
        first_byte,
        cut,
        first,
        last_ms = last,
        share
    );

    // ANCHOR: idle_on
    let (kept, tries) = best_of_3(
        || {
            let s = Server::start(lab, d, d.on);
            let attacked = siege(&s, d.plan(s.port, true, false));
            s.stop(lab);
            attacked
        },
        unharmed,
    );
    // ANCHOR_END: idle_on
    let (share, p99) = (kept.out.share(), kept.out.p99());
    let (syn_recv, queued, free) =
        (kept.server.syn_recv, kept.server.queued, kept.free);
    let (cut, served) = (kept.out.idle_cut.len(), answered(&kept));
    let (first, last) = lifetimes(&kept.out.idle_cut);
    let p99_text = p99.map_or("over 500 ms".into(), |p| Nanos(p).to_string());
    let (syncookies, overflows) = (kept.syncookies, kept.overflows);
    observe!(lab, "idle_on", "defended ({defences}): mid-attack {syn_recv} connections \
        waited in the kernel before accept (SYN_RECV), accept queue {queued}, {free} of \
        {n} workers free; the {cut} handed over silent when the deferral ended were \
        closed at once, {first} to {last} ms after their connect; the probe got {served} \
        ({share:.1}%), p99 {p99_text}; TcpExt: SYN cookies {syncookies}, accept-queue \
        overflows {overflows}",
        defences = describe(d.on), syn_recv, queued, free, n, cut, first, last, served,
        share, p99_ms = p99.map(|p| p.as_millis() as u64), p99_text, syncookies,
        overflows, tries);
    check!(lab, "idle_defended", unharmed(&kept),
        "with TCP_DEFER_ACCEPT, {idle} idle connections cost a normal client nothing: \
         {share:.1}% of its requests answered (at least 99%), p99 {p99_text} (at most \
         100 ms; try {tries} of at most 3)", share, p99_text, tries);

    // ANCHOR: keepalive
    let limit = d.on.0.keepalive;
    let defended = Server::start(lab, d, d.on);
    let wait = limit.map_or(Duration::from_secs(2), |k| k * 3);
    let kept_on = closed_after(defended.port, wait);
    defended.stop(lab);
    let kept_off = kept_off.join().unwrap_or(None);
    bare.stop(lab);
    // ANCHOR_END: keepalive
    let show = |c: Option<Duration>, w: Duration| match c {
        Some(t) => format!("closed {} ms after its answer", t.as_millis()),
        None => format!("still open {} ms after its answer", w.as_millis()),
    };
    let (on, off) = (show(kept_on, wait), show(kept_off, Duration::from_secs(2)));
    let limit_ms = limit.map(|k| k.as_millis() as u64);
    let timeout = limit_ms.map_or("none".into(), |ms| format!("{ms} ms"));
    observe!(
        lab,
        "keepalive_idle",
        "a kept-alive connection, silent after one request: \
        with no defence {off}; with a keep-alive timeout ({timeout}) {on}",
        off,
        on,
        timeout,
        limit_ms,
        off_ms = kept_off.map(|t| t.as_millis() as u64),
        on_ms = kept_on.map(|t| t.as_millis() as u64)
    );
    let in_time = match (kept_on, limit) {
        (Some(t), Some(k)) => t + MS_50 >= k && t <= k + 10 * MS_50,
        _ => false,
    };
    check!(lab, "keepalive_cut", in_time && kept_off.is_none(),
        "the keep-alive timeout closes an idle kept-alive connection on time (within \
         500 ms after it), which with no defence holds its worker as long as the client \
         likes");
}

const MS_50: Duration = Duration::from_millis(50);

/// `served of probes`, as text.
fn answered(s: &Siege) -> String {
    let ok = s.out.probes.iter().filter(|p| p.is_some()).count();
    format!("{ok} of {} requests answered", s.out.probes.len())
}

/// The shortest and longest of `lived`, in ms (0 if none).
fn lifetimes(lived: &[Duration]) -> (u64, u64) {
    let ms = |d: Option<&Duration>| d.map_or(0, |d| d.as_millis() as u64);
    (ms(lived.iter().min()), ms(lived.iter().max()))
}

/// One request on a new kept-alive connection, then silence: how long after the answer the
/// server closed it, or None if it was still open after `wait` (or never answered).
fn closed_after(port: u16, wait: Duration) -> Option<Duration> {
    let mut s = connect(port).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    read_response(&mut s).ok()?;
    let answered = Instant::now();
    s.set_read_timeout(Some(wait)).ok()?;
    let mut byte = [0u8; 1];
    match s.read(&mut byte) {
        Ok(0) => Some(answered.elapsed()), // EOF: the server closed it
        _ => None,                         // a timeout: still open
    }
}
