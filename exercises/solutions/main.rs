//! The reference solutions, one module per exercise (the same file name as the exercise).
//! `lab check NAME --variant solution` runs this program with argv[0] set to NAME.

macro_rules! dispatch {
    ($($m:ident),* $(,)?) => {
        $(mod $m;)*
        fn main() {
            let arg0 = std::env::args().next().unwrap_or_default();
            let name = arg0.rsplit('/').next().unwrap_or("").replace('-', "_");
            $(if name == stringify!($m) { return $m::main(); })*
            eprintln!("no solution called {arg0:?}");
            std::process::exit(2)
        }
    };
}

dispatch!(
    fork_wait_all,
    fork_exit_status,
    exec_cloexec,
    exec_replace,
    zombie_handler,
    zombie_daemon,
    orphan_subreaper,
    pipe_eof,
    pipe_sigpipe,
    shm_counter,
    tvp_threads,
    deadlock_order,
    deadlock_pipes,
    pool_retry,
    prefork_respawn,
    prefork_graceful,
    pdeathsig,
    pgroup_stop,
    cow_read_only,
    shm_unlink,
    formation_backoff,
    formation_stop,
    pid1_init,
    io_event_loop,
    io_timer,
);
