//! The command line of the parent-death lab.

use clap::{Parser, ValueEnum};
use proclab::Common;

/// Does killing the parent kill its children? Four ways, observed from /proc and wait statuses.
#[derive(Parser)]
#[command(name = "parent-death", version)]
pub struct Args {
    /// Which scenario to run.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    pub scenario: Scenario,
    /// How many children each parent forks (1 to 16).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub children: u32,
    /// Pause once a family is up, before the kill, in ms (0 to 60000), so that `ps` run
    /// by hand can see it.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub hold_ms: u64,
    /// Pause after the kill before looking at the survivors, in ms (0 to 60000): a slow
    /// death would have time to happen, and `ps` run by hand can see the orphans.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub linger_ms: u64,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum Scenario {
    /// Every scenario, in order.
    All,
    /// 1. plain fork; the parent is killed with SIGKILL.
    Plain,
    /// 2. the children ask for PR_SET_PDEATHSIG(SIGTERM).
    Pdeathsig,
    /// 3. the parent's process group is signalled (kill(-pgid, SIGTERM)).
    Pgroup,
    /// 4. the children read a pipe whose write end only the parent holds.
    Pipe,
}

impl Scenario {
    /// Its name in the observations, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::All => "all",
            Scenario::Plain => "plain",
            Scenario::Pdeathsig => "pdeathsig",
            Scenario::Pgroup => "pgroup",
            Scenario::Pipe => "pipe",
        }
    }
}
