//! The shm lab's flags, and the command line of the exec'd peer.

use clap::Parser;
use proclab::Common;
use std::ffi::CString;

/// Shared memory: copies vs sharing, named shm, lost updates fixed three ways, a ring.
#[derive(Parser)]
#[command(name = "shm", version)]
pub struct Args {
    /// Processes incrementing the shared counter (2 to 16).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(2..=16))]
    pub procs: u32,
    /// Increments per process (1000 to 100000000).
    #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(1000..=100_000_000))]
    pub iters: u64,
    /// MiB moved through shared memory and through a pipe in section 6 (1 to 4096).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub mib: u32,
    /// How long the named segment stays in /dev/shm before it is unlinked, in ms (0 to
    /// 60000), so that `ls -l /dev/shm` run by hand can see it (or use --step).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub linger_ms: u64,
    /// (internal) Run as the peer that opens the named segment NAME after exec.
    #[arg(long, hide = true, value_parser = segment_name)]
    pub peer: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

/// A segment's name as `shm_open` takes it: `/`, then 1 to 254 bytes with no `/`
/// (bad input exits 2 before anything is forked).
fn segment_name(s: &str) -> Result<String, String> {
    let rest = s.strip_prefix('/').ok_or("a segment name starts with /")?;
    if rest.is_empty() || rest.len() > 254 || rest.contains('/') {
        return Err("a segment name is / then 1 to 254 bytes, no other /".into());
    }
    Ok(s.to_string())
}

/// The program and argv that run this lab again as the peer of segment `name`: made before
/// fork, so that the child only calls execv.
pub fn peer_command(name: &str, json: bool) -> (CString, Vec<CString>) {
    let exe = CString::new("/proc/self/exe").expect("no NUL");
    let mut argv = vec![
        exe.clone(),
        CString::new("--peer").expect("no NUL"),
        CString::new(name).expect("no NUL"),
    ];
    if json {
        argv.push(CString::new("--json").expect("no NUL"));
    }
    (exe, argv)
}
