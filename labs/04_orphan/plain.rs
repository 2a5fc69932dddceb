//! Case A: the lab is an ordinary process, so the kernel picks the orphan's adopter by
//! its rule (the nearest subreaper above, else PID 1). The orphan then ends by itself,
//! and its reaping belongs to the adopter: the lab can only watch /proc.

use crate::generations::make_orphan;
use nix::unistd::getpid;
use proclab::lifeline::Lifeline;
use proclab::{check, cleanup, fdio, observe, procfacts, Deadline, Lab};
use std::time::{Duration, Instant};

/// Who may adopt an orphan of the lab: PID 1, and the lab's ancestors (one of which may
/// be a subreaper). Observed first, since the answer depends on the machine.
pub fn who_may_adopt(lab: &mut Lab) -> Vec<i32> {
    let mut ancestors = Vec::new();
    let mut pid = getpid().as_raw();
    while let Some(p) = procfacts::ppid(pid).filter(|&p| p > 0) {
        ancestors.push(p);
        pid = p;
    }
    let pid1 = procfacts::comm(1).unwrap_or_else(|| "?".into());
    let line: Vec<String> = ancestors.iter().map(|p| p.to_string()).collect();
    let line = line.join(", ");
    observe!(
        lab,
        "machine",
        "PID 1 here is {pid1_comm}; the lab's ancestors: {line}",
        pid1_comm = pid1,
        lab_pid = getpid().as_raw(),
        ancestors
    );
    ancestors
}

pub fn run(lab: &mut Lab, above: &[i32], lifeline: &Lifeline, linger_ms: i32) {
    let o = make_orphan(lab, "plain", above, lifeline, linger_ms);
    let adopter = o.new_ppid.unwrap_or(0);
    let change = o.change();
    check!(
        lab,
        "plain_orphan_adopted",
        o.old_ppid == o.parent.as_raw()
            && adopter > 0
            && adopter != o.old_ppid
            && o.ppid_from_proc == o.new_ppid
            && (adopter == 1 || above.contains(&adopter)),
        "{change}"
    );
    // ANCHOR: plain_end
    // Not our child any more: its end and its reaping belong to the adopter.
    let by = Deadline::after(Duration::from_millis(linger_ms as u64 + 5000));
    let eof = fdio::read_full_by(&o.reports, &mut [0u8; 1], by) == Ok(0);
    let sw = Instant::now(); // the orphan has exited (its report pipe closed)
    let mut states = String::new();
    let pid = o.pid.as_raw();
    let reaped = procfacts::poll_until(Duration::from_secs(5), || {
        match procfacts::state(pid) {
            Some(s) => {
                if !states.ends_with(s) {
                    states.push(s); // Z: ended, waiting for its new parent
                }
                None
            }
            None => Some(sw.elapsed()), // gone from /proc: reaped
        }
    });
    // ANCHOR_END: plain_end
    cleanup::forget(o.pid);
    let comm = &o.adopter_comm;
    let ms = reaped.map(|d| d.as_millis() as u64);
    let how = match ms {
        Some(ms) => format!("{comm} ({adopter}) reaped it {ms} ms later"),
        None => format!(
            "{comm} ({adopter}) has not reaped it within 5 s: it stays a zombie \
             until {adopter} waits"
        ),
    };
    observe!(
        lab,
        "plain_end",
        "the orphan ended by itself; {how} (states seen: [{states_seen}])",
        orphan = pid,
        ended = eof,
        states_seen = states,
        reaped_by_adopter = reaped.is_some(),
        reaped_after_ms = ms,
        adopter
    );
    check!(
        lab,
        "plain_orphan_ended",
        eof && procfacts::state(pid).is_none_or(|s| s == 'Z'),
        "the orphan ended by itself (its report pipe closed; it is gone, or a \
         zombie of its adopter)"
    );
}
