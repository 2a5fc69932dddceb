//! # formation: process types, a process manager, and scale-out
//!
//! A Procfile and a formation run under a process manager of the lab's own (re-executed
//! as `formation manage`): output streams, crashes under two policies, shutdown with a
//! grace period, a daemon that escapes its manager, and the web processes of two hosts
//! (network namespaces) behind nginx.
//!
//! Chapter: book/src/13-formation.md

mod crashes;
mod daemon;
mod events;
mod exec;
mod files;
mod formation;
mod http;
mod janitor;
mod load;
mod manager;
mod netns;
mod never_daemonize;
mod nginx;
mod output_streams;
mod policy;
mod procfile;
mod programs;
mod run;
mod scale_out;
mod seen;
mod shutdown;
mod spawn;
mod streams;

use clap::{CommandFactory, Parser, ValueEnum};
use proclab::lifeline::Lifeline;
use proclab::{Common, Lab, OrDie};

/// Process types under a process manager: streams, crashes, shutdown, daemons, scale-out.
#[derive(Parser)]
#[command(name = "formation", version)]
pub struct Args {
    /// Which part to run.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    pub scenario: Scenario,
    /// The formation of part 1: how many processes of each type of the Procfile (each
    /// 0 to 32), e.g. web=2,worker=3.
    #[arg(long, default_value = "web=2,worker=3")]
    pub formation: String,
    /// The base port (0, or 1024 to 60000): web.1 gets it, worker.1 it + 100, and so on.
    /// 0 picks a free block; without the flag, Foreman's 5000 if its block is free.
    #[arg(long, value_parser = clap::value_parser!(u16).range(0..=60_000))]
    pub port: Option<u16>,
    /// The grace period, in ms (100 to 60000), between SIGTERM and SIGKILL at shutdown
    /// (Foreman's and honcho's is 5000, systemd's TimeoutStopSec= 90000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub grace_ms: u64,
    /// How many chatter processes write at once in part 2 (1 to 32).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub chatters: u32,
    /// How long each chatter's lines are, in bytes (16 to 60000; a pipe's PIPE_BUF is 4096).
    #[arg(long, default_value_t = 6000, value_parser = clap::value_parser!(u32).range(16..=60_000))]
    pub line_bytes: u32,
    /// How many requests the client sends through nginx in each phase of part 6 (20 to 5000).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(20..=5000))]
    pub requests: u32,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum Scenario {
    All,
    Formation,
    Streams,
    Crashes,
    Shutdown,
    Daemon,
    ScaleOut,
}

/// What every part shares: the lab's files, its lifeline, the base port.
pub struct Ctx {
    pub files: crate::files::Files,
    pub lifeline: Lifeline,
    pub port: u16,
}

fn main() {
    programs::dispatch(); // a process type or the manager: never returns
    let args = Args::parse();
    let types = procfile::parse(procfile::PROCFILE);
    if let Err(e) = procfile::formation(&args.formation, &types) {
        let kind = clap::error::ErrorKind::ValueValidation;
        Args::command().error(kind, format!("--formation: {e}")).exit(); // exit 2
    }
    let mut lab = Lab::start(
        "formation",
        "a formation of process types runs under a manager that relays whole lines, sees \
         every death, restarts or stops by policy, escalates SIGTERM to SIGKILL, loses a \
         daemon and adopts it back as a subreaper, and scales out behind nginx",
        &args.common,
    );
    let lifeline = Lifeline::new().or_die("pipe2");
    let janitor = janitor::start(&lifeline);
    let port = formation::base_port(args.port, types.len());
    let ctx = Ctx { files: crate::files::Files::create(), lifeline, port };
    proclab::say!(
        "janitor {janitor}; the lab's files in /dev/shm; base port {port}"
    );
    let runs = |s: Scenario| args.scenario == Scenario::All || args.scenario == s;
    if runs(Scenario::Formation) {
        formation::run(&mut lab, &args, &ctx);
    }
    if runs(Scenario::Streams) {
        output_streams::run(&mut lab, &args, &ctx);
    }
    if runs(Scenario::Crashes) {
        crashes::run(&mut lab, &args, &ctx);
    }
    if runs(Scenario::Shutdown) {
        shutdown::run(&mut lab, &args, &ctx);
    }
    if runs(Scenario::Daemon) {
        never_daemonize::run(&mut lab, &args, &ctx);
    }
    if runs(Scenario::ScaleOut) {
        scale_out::run(&mut lab, &args, &ctx);
    }
    ctx.files.remove();
    lab.finish()
}
