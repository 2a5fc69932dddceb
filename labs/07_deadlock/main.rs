//! # deadlock: make it, see it, break it, prevent it
//!
//! Four certain deadlocks (two threads, two processes with file locks, two processes with
//! pipes, N dining philosophers), each detected within `--deadline-ms`, shown as a cycle
//! and broken; then the fixes, each taking away a condition a deadlock needs.
//!
//! Chapter: book/src/07-deadlock.md

use clap::{Parser, ValueEnum};
use proclab::measure::fmt_duration;
use proclab::{say, Common, Lab};
use std::time::Duration;

mod coffman;
mod detector;
mod fcntl;
mod lockfiles;
mod philosophers;
mod pipes;
mod processes;
mod procview;
mod rendezvous;
mod threads;
mod waitfor;
mod watch;
mod wire;
mod worker;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Threads,
    Processes,
    Pipes,
    Philosophers,
    All,
}

/// Deadlocks made on purpose, detected, shown as a cycle, broken, and then prevented.
#[derive(Parser)]
#[command(name = "deadlock", version)]
pub struct Args {
    /// Which deadlocks to make, see and break (each also runs its fix).
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    scenario: Scenario,
    /// The deadline, in ms (100 to 60000), for detecting each deadlock and for each fix
    /// to finish, in lab time (a --step pause does not count); then the watchdog breaks it.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub deadline_ms: u64,
    /// How many dining philosophers (and forks) (2 to 32).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=32))]
    pub philosophers: u32,
    /// How many times each thread of a fix takes both locks, and each philosopher eats
    /// (1 to 1000000).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub iters: u32,
    /// Keep each deadlock in place for this many ms (0 to 600000) after it was detected,
    /// to look at it with ps, gdb or /proc before it is broken.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub hold_ms: u64,
    /// (internal) run as a worker process with this role.
    #[arg(long, value_enum, hide = true)]
    role: Option<worker::Role>,
    #[command(flatten)]
    common: Common,
}

impl Args {
    /// The deadline of each deadlock and each fix, in lab time.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }
    /// A deadlock must be over (detected, held with --hold-ms, broken, reaped) by then.
    pub fn ends_by(&self) -> Duration {
        self.deadline()
            + Duration::from_millis(self.hold_ms)
            + Duration::from_secs(1)
    }
}

fn main() {
    let args = Args::parse();
    if let Some(role) = args.role {
        worker::run(role, &args); // a re-executed worker process: never returns
    }
    let mut lab = Lab::start(
        "deadlock",
        "each deadlock formed for certain, was detected within the deadline with its cycle shown, and was broken; each fix took away a condition the deadlock needs and finished",
        &args.common,
    );
    let want = |s: Scenario| args.scenario == s || args.scenario == Scenario::All;
    let mut rows = Vec::new();
    let (deadline, hold) = (fmt_duration(args.deadline()), args.hold_ms);
    say!("deadline {deadline} per deadlock; --hold-ms {hold} before breaking each one");

    if want(Scenario::Threads) {
        lab.section("1. Two threads, two mutexes, opposite order");
        let mut row = threads::run(&mut lab, &args, worker::Role::Pair);
        lab.section(
            "2. Four fixes, each taking away a condition the deadlock needs",
        );
        (row.fix, row.fix_ok) = ("four fixes", coffman::run(&mut lab, &args));
        rows.push(row);
    }
    if want(Scenario::Processes) {
        lab.section("3. Two processes, two file locks");
        let files = lockfiles::LockFiles::create();
        let mut row = processes::run(&mut lab, &args, &files);
        row.broken &= fcntl::run(&mut lab, &args, &files);
        files.remove();
        rows.push(row);
    }
    if want(Scenario::Pipes) {
        lab.section("4. Two processes, two full pipes, no lock at all");
        rows.push(pipes::run(&mut lab, &args));
    }
    if want(Scenario::Philosophers) {
        lab.section(&format!("5. {} dining philosophers", args.philosophers));
        rows.push(philosophers::run(&mut lab, &args));
    }

    lab.section("6. Verdict per scenario");
    summary(&mut lab, &rows);
    lab.finish()
}

/// One row of the final table: what a scenario showed.
pub struct Row {
    scenario: &'static str,
    cycle: bool,
    detected: Option<Duration>,
    broken: bool,
    fix: &'static str,
    fix_ok: bool,
}

/// The verdict table: one row per scenario, verified only if all three held.
fn summary(lab: &mut Lab, rows: &[Row]) {
    let yes = |b: bool| if b { "yes" } else { "NO" }.to_string();
    let row = |r: &Row| {
        let detected = r.detected.map_or("-".into(), fmt_duration);
        let ok = r.cycle && r.broken && r.fix_ok;
        let verdict = if ok { "verified" } else { "NOT verified" }.to_string();
        let (fix, name) = (r.fix.to_string(), r.scenario.to_string());
        vec![name, yes(r.cycle), detected, yes(r.broken), fix, verdict]
    };
    let rows: Vec<Vec<String>> = rows.iter().map(row).collect();
    let headers =
        ["scenario", "cycle seen", "detected in", "broken", "fix", "verdict"];
    lab.table("verdicts", &headers, &rows);
}
