//! # pid1: what a container's first process must do
//!
//! A process as PID 1 of a new PID namespace: SIGTERM and SIGINT without a handler do
//! nothing to it, SIGKILL only from outside (and it takes the namespace along); orphans
//! are adopted by it and stay zombies unless it waits. A minimal init fixes both, like
//! tini and dumb-init; then what zombies cost, and fork failing at a pids limit.
//!
//! Chapter: book/src/14-pid1.md

mod app;
mod cgroup;
mod claim;
mod cost;
mod exhaustion;
mod figures;
mod init;
mod inits;
mod maker;
mod namespace;
mod ns;
mod orphans;
mod privileges;
mod program;
mod sigkill;
mod signals;
mod trial;
mod wire;

use clap::Parser;
use proclab::{Common, Lab, OrDie};

/// pid1: PID 1 of a PID namespace: signals, orphans, zombies, an init, pid limits.
#[derive(Parser)]
#[command(name = "pid1", version)]
pub struct Args {
    /// How many orphans to make in parts 4 to 6 (1 to 20).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    orphans: u32,
    /// How many zombies to hold at each step of part 7, a comma list (each 1 to 10000).
    #[arg(long, value_delimiter = ',', default_values_t = [10, 1000, 10_000],
        value_parser = clap::value_parser!(u32).range(1..=10_000))]
    zombies: Vec<u32>,
    /// The limit of part 8's pids cgroup, pids.max (2 to 1000).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pids_max: u32,
    /// How long part 8 keeps its cgroup full of zombies, in ms (0 to 60000), to look
    /// at it (`cat /sys/fs/cgroup/pids/proclab-pid1-*/pids.current`, `ps`).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    linger_ms: u64,
    /// Skip part 8, which needs a pids cgroup of its own (root); run the rest.
    #[arg(long)]
    skip_cgroup: bool,
    /// Internal: run as the program of parts 5 and 6 (`--role program`).
    #[arg(long, hide = true)]
    role: Option<String>,
    /// Internal: how many orphans the program leaves (0 to 20).
    #[arg(long, hide = true, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=20))]
    program_orphans: u32,
    #[command(flatten)]
    common: Common,
}

fn main() {
    let args = Args::parse();
    if args.role.is_some() {
        program::run(&args); // re-executed under an init: never returns
    }
    let limit = match args.skip_cgroup {
        true => "; part 8 (fork failing at a pids limit) is skipped",
        false => {
            "; zombies hold pids until fork fails with EAGAIN at a pids limit, \
                  and fork works again once they are reaped"
        }
    };
    let claim = "PID 1 of a PID namespace ignores SIGTERM and SIGINT without a \
                 handler and SIGKILL from inside, dies of SIGKILL from outside with \
                 its whole namespace, adopts orphans and keeps them as zombies \
                 unless it waits; a minimal init forwards, reaps and passes the \
                 status on, as tini and dumb-init do";
    let mut lab = Lab::start("pid1", format!("{claim}{limit}"), &args.common);
    // Whatever is orphaned outside a namespace comes to the lab, never to the
    // machine's init.
    nix::sys::prctl::set_child_subreaper(true)
        .or_die("prctl(PR_SET_CHILD_SUBREAPER)");
    let ctx = privileges::probe(&args);
    namespace::run(&mut lab, &ctx);
    signals::run(&mut lab, &ctx);
    sigkill::run(&mut lab, &ctx);
    orphans::run(&mut lab, &ctx, &args);
    let ours = init::run(&mut lab, &ctx, &args);
    inits::run(&mut lab, &ctx, &args, &ours);
    let rows = cost::run(&mut lab, &ctx, &args);
    let limit = exhaustion::run(&mut lab, &ctx, &args);
    claim::run(&mut lab, &rows, limit.as_ref());
    lab.finish()
}
