//! # cow: what fork really copies, and when the memory is finally copied
//!
//! fork's cost grows with the parent's touched memory (it copies page tables), while
//! vfork and posix_spawn stay flat; after fork every page is shared, and a page the
//! child writes costs one minor fault and becomes the child's own copy.
//!
//! Chapter: book/src/12-cow.md

use clap::Parser;
use proclab::{Common, Lab};

mod fork_latency;
mod region;
mod shared_after_fork;
mod smaps;
mod spawn_ways;
mod writes;

/// Copy-on-write: fork's cost grows with the parent's memory; pages are copied only when written.
#[derive(Parser)]
#[command(name = "cow", version)]
struct Args {
    /// The largest touched size for the fork-latency table, in MiB (64 to 16384; 1, 64,
    /// 256, 1024, 4096 and 16384 are tried up to it, skipping what does not fit in memory).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(64..=16384))]
    max_mib: u64,
    /// Forks timed per size and way (1 to 100; the median is shown, the fastest judged).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// The shared region of part 2, in MiB (1 to 4096).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    region_mib: u64,
    /// How many 4 KiB pages of the region the child writes in part 2 (1 to 1048576, and
    /// at most the region's pages).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    write_pages: u64,
    /// Back the regions with transparent huge pages (MADV_HUGEPAGE) instead of 4 KiB pages.
    #[arg(long)]
    huge: bool,
    #[command(flatten)]
    common: Common,
}

fn main() {
    let args = Args::parse();
    let pages = (args.region_mib << 20) / region::PAGE as u64;
    if args.write_pages > pages {
        let n = args.write_pages;
        eprintln!(
            "error: --write-pages {n} is more than the region's {pages} pages"
        );
        std::process::exit(proclab::EXIT_USAGE);
    }
    let mut lab = Lab::start(
        "cow",
        "fork copies page tables, not memory: its cost grows with the touched memory \
         while vfork and posix_spawn stay flat; a page is copied only when one side \
         writes it (one minor fault per page)",
        &args.common,
    );

    lab.section("1. Fork latency against the parent's touched memory");
    fork_latency::run(&mut lab, args.max_mib, args.runs, args.huge);
    lab.section("2. After fork: every page of the region is shared");
    let child = shared_after_fork::run(&mut lab, args.region_mib, args.huge);
    lab.section("3. The child writes K pages: K faults, K copies");
    writes::run(&mut lab, child, args.write_pages as usize);
    lab.finish()
}
