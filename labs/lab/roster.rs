//! The labs, in the order of the book. `lab` lists them, `lab all` runs them, `lab record`
//! writes their measured outputs, and the layout test checks each has its bin, chapter,
//! measured output and README row.

/// One lab of the roster.
#[derive(Clone, Copy, Debug)]
pub struct LabInfo {
    pub number: u32,
    /// The bin name: `cargo run --bin NAME`.
    pub name: &'static str,
    /// The file under `labs/`.
    pub file: &'static str,
    /// The chapter under `book/src/`.
    pub chapter: &'static str,
    /// One line: what it shows.
    pub shows: &'static str,
    /// Arguments `lab all` and `lab record` pass (the defaults unless a lab needs a mode).
    pub args: &'static [&'static str],
}

pub const LABS: &[LabInfo] = &[
    LabInfo {
        number: 1,
        name: "fork",
        file: "01_fork/main.rs",
        chapter: "01-fork.md",
        shows: "the child's memory is a copy; waitpid returns each child's exit code or killing signal",
        args: &[],
    },
    LabInfo {
        number: 2,
        name: "exec",
        file: "02_exec/main.rs",
        chapter: "02-exec.md",
        shows: "exec keeps the pid, replaces the program; failure exits 127; CLOEXEC; spawn costs",
        args: &[],
    },
    LabInfo {
        number: 3,
        name: "zombie",
        file: "03_zombie.rs",
        chapter: "03-zombie.md",
        shows: "an exited child stays as Z until reaped; SIGKILL cannot remove it; SIG_IGN avoids it",
        args: &[],
    },
    LabInfo {
        number: 4,
        name: "orphan",
        file: "04_orphan/main.rs",
        chapter: "04-orphan.md",
        shows: "a child outlives its parent and is adopted by PID 1 or the nearest subreaper",
        args: &[],
    },
    LabInfo {
        number: 5,
        name: "pipe",
        file: "05_pipe/main.rs",
        chapter: "05-pipe.md",
        shows: "pipe bytes arrive intact; EOF needs every write end closed; capacity, PIPE_BUF atomicity, SIGPIPE/EPIPE, throughput",
        args: &[],
    },
    LabInfo {
        number: 6,
        name: "shm",
        file: "06_shared_memory/main.rs",
        chapter: "06-shm.md",
        shows: "MAP_SHARED memory is shared after fork, named POSIX shm, lost updates fixed three ways, zero-copy throughput",
        args: &[],
    },
    LabInfo {
        number: 7,
        name: "deadlock",
        file: "07_deadlock/main.rs",
        chapter: "07-deadlock.md",
        shows: "certain deadlocks (threads, file locks, pipes, philosophers) detected, shown as a cycle, broken; the Coffman fixes finishing",
        args: &[],
    },
    LabInfo {
        number: 8,
        name: "threads-vs-processes",
        file: "08_threads_vs_processes/main.rs",
        chapter: "08-threads-vs-processes.md",
        shows: "start-up, memory (PSS), round trips, bulk hand-over and compute, thread way vs process way, measured",
        args: &[],
    },
    LabInfo {
        number: 9,
        name: "pool",
        file: "09_pool/main.rs",
        chapter: "09-pool.md",
        shows: "a process pool from fork and pipes: exact map, killed worker replaced and its task retried; back-pressure; vs threads, rayon, Python",
        args: &[],
    },
    LabInfo {
        number: 10,
        name: "prefork",
        file: "10_prefork/main.rs",
        chapter: "10-prefork.md",
        shows: "prefork HTTP server: workers share one socket, the master replaces the dead, SIGTERM loses no request; idle and slow clients against deadlines, TCP_DEFER_ACCEPT and nginx in front",
        args: &["--demo"],
    },
    LabInfo {
        number: 11,
        name: "parent-death",
        file: "11_parent_death/main.rs",
        chapter: "11-parent-death.md",
        shows: "children outlive a kill -9'd parent (nginx's workers too); PDEATHSIG, killpg or a pipe EOF end them",
        args: &[],
    },
    LabInfo {
        number: 12,
        name: "cow",
        file: "12_copy_on_write/main.rs",
        chapter: "12-cow.md",
        shows: "fork cost grows with touched memory (page tables), vfork/posix_spawn stay flat; pages copied only when written",
        args: &[],
    },
    LabInfo {
        number: 13,
        name: "formation",
        file: "13_formation/main.rs",
        chapter: "13-formation.md",
        shows: "Procfile and formation under a manager of its own: whole lines, crashes by policy, SIGTERM then SIGKILL, a daemon lost and adopted back, two hosts behind nginx",
        args: &[],
    },
    LabInfo {
        number: 14,
        name: "pid1",
        file: "14_pid1/main.rs",
        chapter: "14-pid1.md",
        shows: "PID 1 of a PID namespace ignores SIGTERM, adopts orphans, keeps zombies; a minimal init vs tini and dumb-init; what zombies cost; EAGAIN at pids.max",
        args: &[],
    },
    LabInfo {
        number: 15,
        name: "io-models",
        file: "15_io_models/main.rs",
        chapter: "15-io-models.md",
        shows: "one HTTP app served by prefork, threads, an epoll loop and N SO_REUSEPORT loops under four loads; memory per connection; the worker-count rule swept; Node's cluster spread",
        args: &[],
    },
];

/// The lab called `name`.
pub fn find(name: &str) -> Option<&'static LabInfo> {
    LABS.iter().find(|l| l.name == name)
}
