//! The process types of the Procfile: this same binary, re-executed by the manager with
//! a role (`formation web`). Each reads its configuration from the environment (PS,
//! PORT, QUEUE) and writes its log to stdout, as 12-factor asks. The daemon lives in
//! never_daemonize.rs, the manager in manager.rs, the janitor in janitor.rs.

use proclab::fdio;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// If this process was started with a role (`formation web`), run it; never returns.
pub fn dispatch() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("manage") => {
            use clap::Parser;
            crate::manager::run(crate::manager::ManageArgs::parse_from(&args[1..]))
        }
        Some("janitor") => crate::janitor::main(&args[2..]),
        Some("web") => web(),
        Some("worker") => worker(),
        Some("chatter") => chatter(),
        Some("crasher") => crasher(),
        Some("stubborn") => stubborn(),
        Some("daemon") => crate::daemon::daemon(),
        _ => {}
    }
}

/// A variable of the process's environment (set by the manager).
pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Handle SIGTERM by asking the loop to stop (no SA_RESTART: a poll returns EINTR).
pub fn on_sigterm() {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_term as *const () as usize;
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
    }
}

/// True once SIGTERM came.
pub fn stopping() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Wait up to `ms` for `fd` to be readable; false on timeout or a signal.
pub fn readable(fd: i32, ms: i32) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}

/// `web`: an HTTP server on $BIND:$PORT (127.0.0.1 unless BIND says otherwise) that
/// answers every `GET /` with its name and pid, and logs each request on stdout.
pub fn web() -> ! {
    let (ps, port, bind) = (var("PS"), var("PORT"), std::env::var("BIND"));
    let bind = bind.unwrap_or_else(|_| "127.0.0.1".into());
    let l =
        std::net::TcpListener::bind(format!("{bind}:{port}")).unwrap_or_else(|e| {
            eprintln!("bind {bind}:{port}: {e}");
            std::process::exit(1)
        });
    if !proclab::test_removes("no_sigterm_handler") {
        on_sigterm(); // tests only go without: SIGTERM's default action kills it
    }
    println!("listening on {bind}:{port}");
    let body = format!("{ps} pid {} on {}\n", std::process::id(), var("HOST"));
    while !stopping() {
        if !readable(l.as_raw_fd(), 100) {
            continue;
        }
        if let Ok((c, peer)) = l.accept() {
            use std::os::fd::IntoRawFd;
            crate::http::answer(c.into_raw_fd(), body.as_bytes());
            println!("GET / from {peer}");
        }
    }
    println!("SIGTERM: no longer accepting; exiting");
    std::process::exit(0)
}

/// `worker`: takes 64-byte jobs from the queue at $QUEUE (a FIFO) and logs each one
/// done. The job `crash` is one it cannot handle: it says so on stderr and exits 70.
pub fn worker() -> ! {
    let q = var("QUEUE");
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&q);
    let f = f.unwrap_or_else(|e| {
        eprintln!("open {q}: {e}");
        std::process::exit(1)
    });
    if !proclab::test_removes("no_sigterm_handler") {
        on_sigterm();
    }
    println!("waiting for jobs on {q}");
    // One job per read: jobs are 64 bytes. Tests read 4096, and lose the jobs after
    // the first that one read brings.
    let size = if proclab::test_removes("big_reads") { 4096 } else { 64 };
    let mut buf = vec![0u8; size];
    while !stopping() {
        if !readable(f.as_raw_fd(), 100) {
            continue;
        }
        match nix::unistd::read(&f, &mut buf) {
            Ok(n) if n >= 64 => {}
            Ok(0) => break, // no writer left: the queue is gone
            _ => continue,  // another worker took it (EAGAIN)
        }
        let text = String::from_utf8_lossy(&buf[..64]).trim().to_string();
        if text == "crash" {
            eprintln!("job {text}: cannot handle it; exiting with status 70");
            std::process::exit(70)
        }
        let n: u64 = text.parse().unwrap_or(0);
        println!("job {n} done: {n} squared is {}", n * n);
    }
    println!("no job in hand; exiting");
    std::process::exit(0)
}

/// A queue job: 64 bytes (less than PIPE_BUF, so each write lands whole).
pub fn job(text: &str) -> [u8; 64] {
    let mut out = [b' '; 64];
    out[..text.len().min(63)]
        .copy_from_slice(&text.as_bytes()[..text.len().min(63)]);
    out[63] = b'\n';
    out
}

/// Line `seq` of chatter `ps`: its name, its number, and letters that depend on both,
/// `bytes` long with the newline. The lab rebuilds it to check every line arrived whole.
pub fn chatter_line(ps: &str, seq: u32, bytes: usize) -> Vec<u8> {
    let mut line = format!("{ps} {seq} ").into_bytes();
    let seed = proclab::bytes::fnv1a(proclab::bytes::FNV_OFFSET, &line);
    let fill = proclab::bytes::pattern(bytes.saturating_sub(line.len() + 1), seed);
    line.extend(fill.iter().map(|b| b'a' + b % 26));
    line.push(b'\n');
    line
}

/// `chatter`: writes $CHATTER_LINES lines of $CHATTER_BYTES bytes as fast as it can,
/// each in one write(2); every tenth goes to stderr. Then exits 0.
pub fn chatter() -> ! {
    let ps = var("PS");
    let lines: u32 = var("CHATTER_LINES").parse().unwrap_or(100);
    let bytes: usize = var("CHATTER_BYTES").parse().unwrap_or(6000);
    for seq in 0..lines {
        let fd = if seq % 10 == 9 { std::io::stderr().as_raw_fd() } else { 1 };
        // SAFETY: fd 1 or 2, open for the whole life of the process.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let _ = fdio::write_all(fd, &chatter_line(&ps, seq, bytes));
    }
    std::process::exit(0)
}

/// `crasher`: a process that cannot start (its backing service is missing): it tries
/// for 100 ms, says why on stderr and exits 1. Under a restart policy: a crash loop.
pub fn crasher() -> ! {
    println!("connecting to the database...");
    std::thread::sleep(Duration::from_millis(100));
    eprintln!("DATABASE_URL is not set: giving up");
    std::process::exit(1)
}

/// `stubborn`: ignores SIGTERM (SIG_IGN, as /proc/PID/status's SigIgn shows) and
/// works on; only SIGKILL ends it.
pub fn stubborn() -> ! {
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    println!("ignoring SIGTERM: only SIGKILL will stop me");
    let _ = std::io::stdout().flush();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}
