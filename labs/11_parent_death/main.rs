//! # parent-death: does killing the parent kill its children?
//!
//! The observer (the lab, a child subreaper) forks a parent, which forks children; it
//! kills the parent and reads from /proc and wait statuses what became of them. Four
//! ways: a plain fork, PR_SET_PDEATHSIG, a process-group signal, a pipe's end of file;
//! then nginx's own workers, when nginx is installed.
//!
//! Chapter: book/src/11-parent-death.md

mod family;
mod fate;
mod nginx;
mod nginx_run;
mod pdeathsig;
mod pgroup;
mod pipe_eof;
mod plain;
mod subreaper;
mod summary;

use clap::{Parser, ValueEnum};
use proclab::lifeline::Lifeline;
use proclab::{Common, Lab, OrDie};

/// Does killing the parent kill its children? Four ways and nginx, seen in /proc and wait statuses.
#[derive(Parser)]
#[command(name = "parent-death", version)]
pub struct Args {
    /// Which way to run.
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
    /// Every way, in order.
    All,
    /// 1. plain fork; the parent is killed with SIGKILL.
    Plain,
    /// 2. the children ask for PR_SET_PDEATHSIG(SIGTERM).
    Pdeathsig,
    /// 3. the parent's process group is signalled (kill(-pgid, SIGTERM)).
    Pgroup,
    /// 4. the children read a pipe whose write end only the parent holds.
    Pipe,
    /// 5. nginx's master is killed with SIGKILL (skipped if nginx is not installed).
    Nginx,
}

fn main() {
    let args = Args::parse();
    let mut lab = Lab::start(
        "parent-death",
        "killing the parent does not by itself kill its children: they live on as \
         orphans unless PR_SET_PDEATHSIG, a process-group signal or a pipe's end of \
         file ends them",
        &args.common,
    );
    let runs = |s: Scenario| args.scenario == Scenario::All || args.scenario == s;
    // Every process of a family ends when the observer does, even by SIGKILL.
    let lifeline = Lifeline::new().or_die("pipe2");
    let mut ways = Vec::new();

    subreaper::run(&mut lab);
    if runs(Scenario::Plain) {
        ways.push(plain::run(&mut lab, &args, &lifeline));
    }
    if runs(Scenario::Pdeathsig) {
        ways.push(pdeathsig::run(&mut lab, &args, &lifeline));
    }
    if runs(Scenario::Pgroup) {
        ways.push(pgroup::run(&mut lab, &args, &lifeline));
    }
    if runs(Scenario::Pipe) {
        ways.push(pipe_eof::run(&mut lab, &args, &lifeline));
    }
    if runs(Scenario::Nginx) {
        ways.extend(nginx::run(&mut lab, &args, &lifeline));
    }
    summary::show(&mut lab, &ways);
    lab.finish()
}
