//! The deadlock lab's command line: which scenario, the deadline, the philosophers, the
//! rounds of each fix, --hold-ms, and the hidden --role of a re-executed worker.

use clap::{Parser, ValueEnum};
use proclab::Common;
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Threads,
    Processes,
    Pipes,
    Philosophers,
    All,
}

/// What a worker process (the lab re-executed) does: one deadlock or one fix, with threads.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
pub enum Role {
    Pair,
    Philosophers,
    FixOrder,
    FixLockstep,
    FixJitter,
    FixTimed,
    FixOneLock,
    FixPhilosophers,
}

/// Deadlocks made on purpose, detected, shown as a cycle, broken, and then prevented.
#[derive(Parser)]
#[command(name = "deadlock", version)]
pub struct Args {
    /// Which deadlocks to make, see and break (each also runs its fix).
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    pub scenario: Scenario,
    /// The deadline, in ms (100 to 60000), for detecting each deadlock and for each fix to
    /// finish, in lab time (a --step pause does not count); at the deadline the watchdog
    /// breaks it anyway.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub deadline_ms: u64,
    /// How many dining philosophers (and forks) (2 to 32).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=32))]
    pub philosophers: u32,
    /// How many times each thread of a fix takes both locks, and each philosopher eats
    /// (1 to 1000000).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub iters: u32,
    /// Keep each deadlock in place for this many ms (0 to 600000) after it was detected, to
    /// look at it with ps, gdb or /proc before it is broken.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub hold_ms: u64,
    /// (internal) run as a worker process with this role.
    #[arg(long, value_enum, hide = true)]
    pub role: Option<Role>,
    #[command(flatten)]
    pub common: Common,
}

impl Args {
    /// The deadline of each deadlock and each fix.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }
    /// A deadlock must be over (detected, held with --hold, broken, reaped) by this time.
    pub fn ends_by(&self) -> Duration {
        self.deadline()
            + Duration::from_millis(self.hold_ms)
            + Duration::from_secs(1)
    }
}
