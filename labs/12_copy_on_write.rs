//! # cow: what fork really copies, and when the memory is finally copied
//!
//! Part 1 times `fork` + `_exit` + `waitpid` while the parent has 1 MiB, 64 MiB, 256 MiB and
//! 1 GiB of touched memory: it grows with the memory, because fork copies the page tables
//! (one 8-byte entry per 4 KiB page) and marks every page read-only. `vfork` (here
//! `clone(CLONE_VM | CLONE_VFORK)`) and `posix_spawn` of `/bin/true` stay flat: the child
//! borrows the parent's memory until it calls `execve`. Part 2 shows copy-on-write from the
//! kernel's accounting: right after fork the parent and the child share every page of the
//! region (`/proc/PID/smaps`: PSS is half the RSS, everything is Shared_Dirty); when the child
//! writes K pages, its minor page faults rise by K and exactly K pages become private.
//!
//! What to look for: the fork column growing by milliseconds per GiB while the spawn columns
//! do not move; the child's `minflt` delta equal to the number of pages it wrote; the
//! Shared/Private split moving by K pages, and the parent's data unchanged.
//!
//! Caveats: the region is marked MADV_NOHUGEPAGE so it is made of 4 KiB pages (with
//! `--huge`, MADV_HUGEPAGE: 2 MiB pages make fork much cheaper, and then a first write
//! copies 4 KiB after splitting the huge page mapping). Sizes that do not fit in
//! MemAvailable (with a margin) are skipped and said so. Timings are medians of a few runs
//! on whatever else the machine is doing.

use clap::Parser;
use nix::errno::Errno;
use nix::sys::mman::{
    madvise, mmap_anonymous, munmap, MapFlags, MmapAdvise, ProtFlags,
};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, getpid, pipe, read, write, ForkResult, Pid};
use proclab::clock::now_ns;
use proclab::lifeline::die_with_parent;
use proclab::measure::{fmt_bytes, fmt_duration, time_n, Summary};
use proclab::wait::waitpid_by;
use proclab::{
    cleanup, die, fdio, flush_stdout, procfacts, say, Common, Deadline, Lab, OrDie,
    Status,
};
use serde_json::json;
use std::ffi::CString;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;
use std::time::Duration;

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

const PAGE: usize = 4096;

fn main() {
    let args = Args::parse();
    if args.write_pages * PAGE as u64 > args.region_mib << 20 {
        eprintln!(
            "error: --write-pages {} is more than the region's {} pages",
            args.write_pages,
            (args.region_mib << 20) / PAGE as u64
        );
        std::process::exit(proclab::EXIT_USAGE);
    }
    let mut lab = Lab::start(
        "cow",
        "fork copies page tables, not memory: its cost grows with the touched memory while vfork and posix_spawn stay flat; a page is copied only when one side writes it (one minor fault per page)",
        &args.common,
    );
    let me = getpid().as_raw();
    // Tests only: each removes one phenomenon.
    let untouched = proclab::test_removes("region_untouched"); // part 1: no page tables
    let shared = proclab::test_removes("region_shared"); // part 2: MAP_SHARED, no COW
    let writes_nothing = proclab::test_removes("child_writes_nothing"); // part 3
    let prog = TrueProgram::new();
    let mut stack = vec![0u8; 64 << 10]; // the vfork child's stack (it may not use ours)

    lab.section("1. Fork latency against the parent's touched memory");
    let available_mib =
        procfacts::meminfo_field("MemAvailable:").unwrap_or(0) >> 10;
    let mut rows = Vec::new();
    let mut points: Vec<(u64, Summary, Summary, Summary)> = Vec::new(); // (MiB, fork, vfork, spawn)
    for mib in [1u64, 64, 256, 1024, 4096, 16384]
        .into_iter()
        .filter(|&m| m <= args.max_mib)
    {
        if mib + 512 > available_mib / 2 {
            lab.observe(
                "skipped",
                json!({"mib": mib, "available_mib": available_mib}),
                format_args!("{mib} MiB skipped: only {available_mib} MiB available (need twice that plus a margin)"),
            );
            continue;
        }
        let region = Region::new((mib << 20) as usize, args.huge, false);
        if !untouched {
            region.touch(1); // write every page: now each one has a page-table entry
        }
        let pte_kib = procfacts::status_field(me, "VmPTE:").unwrap_or(0);
        // ANCHOR: fork_timing
        let fork_t = time_n(args.runs as usize, || {
            flush_stdout();
            // SAFETY: the child only calls _exit (it ends at once: no lifeline needed).
            match unsafe { fork() }.or_die("fork") {
                // SAFETY: _exit is async-signal-safe.
                ForkResult::Child => unsafe { libc::_exit(0) },
                ForkResult::Parent { child } => {
                    // It only exits: a short wait, which tears its page tables down.
                    waitpid(child, None).or_die("waitpid");
                }
            }
        });
        let vfork_t = time_n(args.runs as usize, || vfork_true(&prog, &mut stack));
        let spawn_t = time_n(args.runs as usize, || spawn_true(&prog));
        // ANCHOR_END: fork_timing
        lab.observe(
            "fork_latency",
            json!({"mib": mib, "pte_kib": pte_kib, "fork_ns": fork_t.median.as_nanos() as u64,
                   "vfork_ns": vfork_t.median.as_nanos() as u64, "spawn_ns": spawn_t.median.as_nanos() as u64,
                   "fork_min_ns": fork_t.min.as_nanos() as u64, "vfork_min_ns": vfork_t.min.as_nanos() as u64,
                   "spawn_min_ns": spawn_t.min.as_nanos() as u64,
                   "anon_huge_kib": procfacts::smaps_rollup_field(me, "AnonHugePages:").unwrap_or(0)}),
            format_args!(
                "{} touched, page tables {pte_kib} KiB: fork {}, vfork+exec {}, posix_spawn {}",
                fmt_bytes(mib << 20),
                fmt_duration(fork_t.median),
                fmt_duration(vfork_t.median),
                fmt_duration(spawn_t.median)
            ),
        );
        rows.push(vec![
            fmt_bytes(mib << 20),
            format!("{pte_kib} KiB"),
            fmt_duration(fork_t.median),
            fmt_duration(vfork_t.median),
            fmt_duration(spawn_t.median),
        ]);
        points.push((mib, fork_t, vfork_t, spawn_t));
        drop(region);
    }
    lab.table(
        "fork_latency_table",
        &[
            "touched",
            "page tables",
            "fork+_exit+wait",
            "vfork+exec true",
            "posix_spawn true",
        ],
        &rows,
    );
    let (first, last) = (points.first().copied(), points.last().copied());
    let mut fork_grows = false;
    let mut spawn_flat = false;
    if let (Some((m0, f0, v0, s0)), Some((m1, f1, v1, s1))) = (first, last) {
        let gib = (m1 - m0) as f64 / 1024.0;
        let per_gib =
            (f1.median.as_secs_f64() - f0.median.as_secs_f64()) / gib.max(1e-9);
        lab.observe(
            "fork_cost_per_gib",
            json!({"from_mib": m0, "to_mib": m1, "fork_ns_per_gib": (per_gib * 1e9) as i64}),
            format_args!(
                "fork + exit + wait costs {} more per GiB of touched memory ({} -> {}, medians)",
                fmt_duration(Duration::from_secs_f64(per_gib.max(0.0))),
                fmt_bytes(m0 << 20),
                fmt_bytes(m1 << 20)
            ),
        );
        // Judged on the fastest run of each: other programs can only make a run slower.
        let growth =
            |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64().max(1e-12);
        fork_grows = m1 >= 64 && growth(f0.min, f1.min) > 2.0;
        // "Flat": each spawn way moved by less than a quarter of what fork moved.
        let moved =
            |a: Duration, b: Duration| (b.as_secs_f64() - a.as_secs_f64()).abs();
        let fork_moved = moved(f0.min, f1.min);
        spawn_flat = m1 >= 64
            && moved(v0.min, v1.min) < fork_moved / 4.0
            && moved(s0.min, s1.min) < fork_moved / 4.0;
    }
    lab.check(
        "fork_grows_with_memory",
        fork_grows,
        "fork + exit + wait takes more than twice as long with the largest region as with 1 MiB (fastest runs)",
    );
    lab.check(
        "spawn_stays_flat",
        spawn_flat,
        "vfork+exec and posix_spawn moved by less than a quarter of fork's growth (fastest runs): they copy no page tables",
    );

    lab.section("2. After fork: every page of the region is shared");
    let region = Region::new((args.region_mib << 20) as usize, args.huge, shared);
    region.touch(1);
    let (to_child_r, to_child_w) = pipe().or_die("pipe");
    let (to_parent_r, to_parent_w) = pipe().or_die("pipe");
    let k = args.write_pages as usize;
    let to_write = if writes_nothing { 0 } else { k };
    flush_stdout();
    // ANCHOR: child_writes
    // SAFETY: the child only calls prctl, getppid, close, read, write, clock_gettime
    // and _exit, and writes memory.
    let child = match unsafe { fork() }.or_die("fork") {
        ForkResult::Child => {
            die_with_parent(me);
            // SAFETY: our copy of the write end; without it, EOF can reach us.
            unsafe { libc::close(to_child_w.as_raw_fd()) };
            let mut cmd = [0u8; 1];
            let _ = write(&to_parent_w, b"r"); // ready: look at our smaps now
            if read(to_child_r.as_fd(), &mut cmd) != Ok(1) {
                // SAFETY: _exit is async-signal-safe.
                unsafe { libc::_exit(1) }
            }
            let t0 = now_ns();
            for p in 0..to_write {
                // SAFETY: p * PAGE < the region's length. A write to a shared
                // page: a fault, a copy.
                unsafe { region.ptr().add(p * PAGE).write_volatile(2) };
            }
            let took = now_ns() - t0;
            let _ = write(&to_parent_w, &took.to_ne_bytes()); // done, in took ns
            let _ = read(to_child_r.as_fd(), &mut cmd); // until the parent looked
                                                        // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => child,
    };
    // ANCHOR_END: child_writes
    cleanup::track(child);
    drop((to_child_r, to_parent_w)); // the child's ends: if it dies, our reads see EOF
    let mut b = [0u8; 8];
    let c = child.as_raw();
    from_child(&mut lab, &to_parent_r, &mut b[..1], child);
    let shared_child = region_smaps(c, region.addr());
    let shared_parent = region_smaps(me, region.addr());
    let rm = args.region_mib << 10; // KiB
    lab.observe(
        "smaps",
        json!({"phase": "after_fork", "who": "child", "pid": c, "region_kib": rm, "rss": shared_child.rss, "pss": shared_child.pss,
               "shared_dirty": shared_child.shared_dirty, "private_dirty": shared_child.private_dirty}),
        format_args!("child  {c}: region Rss {} KiB, Pss {} KiB, Shared_Dirty {} KiB, Private_Dirty {} KiB", shared_child.rss, shared_child.pss, shared_child.shared_dirty, shared_child.private_dirty),
    );
    lab.observe(
        "smaps",
        json!({"phase": "after_fork", "who": "parent", "pid": me, "region_kib": rm, "rss": shared_parent.rss, "pss": shared_parent.pss,
               "shared_dirty": shared_parent.shared_dirty, "private_dirty": shared_parent.private_dirty}),
        format_args!("parent {me}: region Rss {} KiB, Pss {} KiB, Shared_Dirty {} KiB, Private_Dirty {} KiB", shared_parent.rss, shared_parent.pss, shared_parent.shared_dirty, shared_parent.private_dirty),
    );
    let half = |m: &Smaps| {
        m.rss == rm
            && (m.pss as i64 - (rm / 2) as i64).abs() <= (rm / 50).max(8) as i64
    };
    lab.check(
        "pss_is_half_rss_after_fork",
        half(&shared_child) && half(&shared_parent) && shared_child.private_dirty == 0,
        format_args!("right after fork the whole region ({rm} KiB) is resident in both, each one's PSS is half of it, and none of it is private"),
    );

    lab.section("3. The child writes K pages: K faults, K copies");
    let faults_before = procfacts::facts(c).map(|f| f.minflt).unwrap_or(0);
    write(&to_child_w, b"w").or_die("write"); // go: write k pages
    from_child(&mut lab, &to_parent_r, &mut b, child); // done, and how long it took
    let write_ns = u64::from_ne_bytes(b);
    let faults_after = procfacts::facts(c).map(|f| f.minflt).unwrap_or(0);
    let after_child = region_smaps(c, region.addr());
    let after_parent = region_smaps(me, region.addr());
    let faults = faults_after.saturating_sub(faults_before);
    let per_page = Duration::from_nanos(write_ns / k as u64);
    lab.observe(
        "faults",
        json!({"pid": c, "pages_written": k, "minflt_before": faults_before, "minflt_after": faults_after, "minflt_delta": faults, "write_ns": write_ns}),
        format_args!(
            "child wrote {k} pages: its minor faults (/proc/{c}/stat) went {faults_before} -> {faults_after} (+{faults}), {} per page written",
            fmt_duration(per_page)
        ),
    );
    for (who, pid, m) in [("child", c, &after_child), ("parent", me, &after_parent)]
    {
        lab.observe(
            "smaps",
            json!({"phase": "after_writes", "who": who, "pid": pid, "region_kib": rm, "rss": m.rss, "pss": m.pss,
                   "shared_dirty": m.shared_dirty, "private_dirty": m.private_dirty}),
            format_args!(
                "{who:<6} {pid}: region Rss {} KiB, Pss {} KiB, Shared_Dirty {} KiB, Private_Dirty {} KiB",
                m.rss, m.pss, m.shared_dirty, m.private_dirty
            ),
        );
    }
    let parent_sees = region.read_sample(k);
    drop(to_child_w); // the child's last read returns EOF: it exits
    let st = waitpid_by(child, Deadline::after(Duration::from_secs(10)))
        .unwrap_or_else(|| {
            die("waitpid (the child did not end)", Errno::ETIMEDOUT)
        });
    cleanup::forget(child);
    let kk = (k * PAGE / 1024) as u64; // KiB written
    lab.table(
        "region",
        &["", "Rss KiB", "Pss KiB", "Shared_Dirty KiB", "Private_Dirty KiB"],
        &[
            smaps_row("child after fork", &shared_child),
            smaps_row("child after writes", &after_child),
            smaps_row("parent after writes", &after_parent),
        ],
    );
    lab.check(
        "faults_match_pages_written",
        faults >= k as u64 && faults <= k as u64 + k as u64 / 20 + 32,
        format_args!("the child's minor faults rose by {faults} for {k} pages written (about one per page)"),
    );
    lab.check(
        "shared_portion_shrinks",
        after_child.private_dirty == kk && after_child.shared_dirty + kk == shared_child.shared_dirty,
        format_args!("exactly {kk} KiB of the child's region became private and the shared part shrank by as much"),
    );
    lab.check(
        "parent_data_unchanged",
        parent_sees && st.code() == Some(0),
        format_args!("the parent still reads its own values in the pages the child overwrote (the child wrote copies: {parent_sees}); the child {st}"),
    );
    say!("cleaning up: the region is unmapped");
    drop(region);
    lab.finish()
}

/// Field values (KiB) of one mapping in /proc/PID/smaps.
#[derive(Clone, Copy, Debug, Default)]
struct Smaps {
    rss: u64,
    pss: u64,
    shared_dirty: u64,
    private_dirty: u64,
}

fn smaps_row(who: &str, m: &Smaps) -> Vec<String> {
    vec![
        who.to_string(),
        m.rss.to_string(),
        m.pss.to_string(),
        m.shared_dirty.to_string(),
        m.private_dirty.to_string(),
    ]
}

/// The smaps fields of the mapping of `pid` that starts at `addr`.
fn region_smaps(pid: i32, addr: usize) -> Smaps {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let head = format!("{addr:x}-");
    let mut m = Smaps::default();
    let mut inside = false;
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            inside = line.starts_with(&head); // a new mapping's header line
            continue;
        }
        if !inside {
            continue;
        }
        let value = || {
            line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        match first {
            "Rss:" => m.rss = value(),
            "Pss:" => m.pss = value(),
            "Shared_Dirty:" => m.shared_dirty = value(),
            "Private_Dirty:" => m.private_dirty = value(),
            _ => {}
        }
    }
    m
}

/// Read the child's next message (all of `buf`) within 60 s of lab time. A child that
/// ends early or never answers means the pages were not written as shown: not observed.
fn from_child(lab: &mut Lab, fd: &impl AsFd, buf: &mut [u8], child: Pid) {
    let by = Deadline::after(Duration::from_secs(60));
    match fdio::read_full_by(fd, buf, by) {
        Ok(n) if n == buf.len() => {}
        Ok(_) => {
            let st = waitpid_by(child, by).unwrap_or(Status(Err(Errno::ETIMEDOUT)));
            cleanup::forget(child);
            lab.not_observed(
                "faults_match_pages_written",
                format_args!("the child ended early: {st}"),
            )
        }
        Err(e) => lab.not_observed(
            "faults_match_pages_written",
            format_args!("no word from the child within 60 s: {e}"),
        ),
    }
}

/// An anonymous private mapping, the kind malloc gives for large blocks.
struct Region {
    ptr: NonNull<libc::c_void>,
    len: usize,
}

impl Region {
    fn new(len: usize, huge: bool, shared: bool) -> Region {
        let nz = NonZeroUsize::new(len).expect("non-zero size");
        // SAFETY: a fresh anonymous mapping, touching no existing memory.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                nz,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                if shared { MapFlags::MAP_SHARED } else { MapFlags::MAP_PRIVATE },
            )
        }
        .or_die("mmap"); // MAP_PRIVATE: fork shares it copy-on-write
        let advice = if huge {
            MmapAdvise::MADV_HUGEPAGE
        } else {
            MmapAdvise::MADV_NOHUGEPAGE
        };
        // SAFETY: advice on our own fresh mapping.
        unsafe { madvise(ptr, len, advice) }.or_die("madvise"); // 4 KiB pages unless --huge
        Region { ptr, len }
    }
    fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }
    fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr().cast()
    }
    /// Write `value` into every page, so each one is really allocated (a fresh mapping
    /// reads as zeros from one shared zero page).
    fn touch(&self, value: u8) {
        for off in (0..self.len).step_by(PAGE) {
            // SAFETY: off < len.
            unsafe { self.ptr().add(off).write_volatile(value) };
        }
    }
    /// True if the first `pages` pages still hold the value the parent wrote.
    fn read_sample(&self, pages: usize) -> bool {
        // SAFETY: every offset is < len.
        (0..pages.min(self.len / PAGE))
            .all(|p| unsafe { self.ptr().add(p * PAGE).read_volatile() } == 1)
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: our own mapping, no longer used.
        let _ = unsafe { munmap(self.ptr, self.len) };
    }
}

extern "C" {
    static environ: *const *const libc::c_char;
}

/// `/bin/true` as execve wants it, built before any fork or clone.
struct TrueProgram {
    path: CString,
    _arg0: CString,
    argv: [*const libc::c_char; 2],
}

impl TrueProgram {
    fn new() -> Box<TrueProgram> {
        let path = CString::new("/bin/true").expect("no NUL");
        let arg0 = CString::new("true").expect("no NUL");
        let argv = [arg0.as_ptr(), std::ptr::null()];
        Box::new(TrueProgram { path, _arg0: arg0, argv })
    }
}

/// vfork + execve /bin/true + waitpid. `clone(CLONE_VM | CLONE_VFORK)` is what vfork(2)
/// does: the child runs in the parent's memory (nothing copied, not even page tables) on its
/// own small stack, and the parent sleeps until the child has called execve.
fn vfork_true(prog: &TrueProgram, stack: &mut [u8]) {
    // ANCHOR: vfork
    extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: arg is the TrueProgram the suspended parent keeps alive; execve and _exit
        // are the only calls made.
        unsafe {
            let p = &*(arg as *const TrueProgram);
            libc::execve(p.path.as_ptr(), p.argv.as_ptr(), environ);
            libc::_exit(127)
        }
    }
    // Stacks grow down: the child starts at the 16-aligned top of its own stack.
    let top = (stack.as_mut_ptr() as usize + stack.len()) & !15;
    // SAFETY: the child only runs `child` on its own stack; the parent is suspended until execve.
    let pid = unsafe {
        libc::clone(
            child,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            prog as *const TrueProgram as *mut libc::c_void,
        )
    };
    // ANCHOR_END: vfork
    if pid < 0 {
        proclab::die("clone", nix::errno::Errno::last());
    }
    let st = Status(waitpid(Pid::from_raw(pid), None)); // true exits at once
    if st.code() != Some(0) {
        die(&format!("vfork child running /bin/true: {st}"), Errno::ENOEXEC);
    }
}

/// posix_spawn /bin/true + waitpid (glibc does it with clone(CLONE_VM | CLONE_VFORK) too).
fn spawn_true(prog: &TrueProgram) {
    let mut pid = 0;
    // SAFETY: valid path, argv and environment; no file actions, no attributes.
    let r = unsafe {
        libc::posix_spawn(
            &mut pid,
            prog.path.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            prog.argv.as_ptr() as *const *mut libc::c_char,
            environ as *const *mut libc::c_char,
        )
    };
    if r != 0 {
        proclab::die("posix_spawn", nix::errno::Errno::from_raw(r));
    }
    let st = Status(waitpid(Pid::from_raw(pid), None)); // true exits at once
    if st.code() != Some(0) {
        die(&format!("posix_spawn child running /bin/true: {st}"), Errno::ENOEXEC);
    }
}
