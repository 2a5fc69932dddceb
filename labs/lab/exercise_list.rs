//! The list of exercises, in the order of the book (the roster of `exercises/`): each
//! names its file, its check (`checks/`) and the check its wrong solution fails. The
//! `[[bin]]` list, the solutions and the wrong solutions are checked against it
//! (tests/exercises.rs). Labs 1 to 9 are here, 10 to 15 in exercise_list_later.rs.

use crate::checks;
use crate::exercise_list_later::LATER;
use crate::exercises::Exercise;
use std::sync::LazyLock;

/// Every exercise, in the order of the book.
pub static EXERCISES: LazyLock<Vec<Exercise>> =
    LazyLock::new(|| [EARLY, LATER].concat());

const EARLY: &[Exercise] = &[
    Exercise {
        name: "fork-wait-all",
        lab: 1,
        file: "fork_wait_all.rs",
        task: "start four children at once, then wait for every one of them",
        goal: "four children run at the same time and each is reaped by its parent",
        hint: "A wait inside the loop blocks until that child has finished, before the next \
               fork. Keep the pids in a Vec while forking, and wait for each of them after \
               the loop.",
        wrong: ("reaped_by_parent", "calls wait() once after the loop: one child reaped, three left"),
        check: checks::fork::wait_all,
    },
    Exercise {
        name: "fork-exit-status",
        lab: 1,
        file: "fork_exit_status.rs",
        task: "bring the child's answer back to the parent in its exit status",
        goal: "the program exits with the child's count modulo 256, counted in a child \
               that the parent waited for",
        hint: "After fork the child writes to its own copy of `primes`. What does reach the \
               parent is the exit status: waitpid returns WaitStatus::Exited(pid, code), \
               and code is what the child passed to _exit (its low 8 bits).",
        wrong: ("answer", "waitpid with WNOHANG finds the child still counting"),
        check: checks::fork::exit_status,
    },
    Exercise {
        name: "exec-cloexec",
        lab: 2,
        file: "exec_cloexec.rs",
        task: "open a secret so that a program started with exec cannot inherit it",
        goal: "the program holds the secret open, and the program its child execs holds no \
               descriptor of it",
        hint: "A descriptor survives exec unless its close-on-exec flag is set. Set it \
               atomically when opening: OFlag::O_CLOEXEC. (Setting FD_CLOEXEC later with \
               fcntl only changes the table of the process that calls it.)",
        wrong: ("no_leak", "sets FD_CLOEXEC in the parent after the fork"),
        check: checks::exec::cloexec,
    },
    Exercise {
        name: "exec-replace",
        lab: 2,
        file: "exec_replace.rs",
        task: "make a launcher become its program with exec (same pid), status 127 if missing",
        goal: "the launcher's pid runs the program with the greeting in its environment, \
               SIGTERM to that pid ends it, and a missing program gives status 127",
        hint: "std::os::unix::process::CommandExt gives Command an exec() method: it \
               replaces the running program and returns only if that failed (with the \
               error). After it returns, exit with status 127.",
        wrong: ("not_found_127", "a failed exec panics: status 101"),
        check: checks::exec::replace,
    },
    Exercise {
        name: "zombie-handler",
        lab: 3,
        file: "zombie_handler.rs",
        task: "reap every child from a SIGCHLD handler, although one signal stands for five",
        goal: "no child stays a zombie, each is reaped by its parent, and SIGCHLD is not \
               ignored (every exit status is collected)",
        hint: "Standard signals do not queue: five children that end while SIGCHLD is \
               blocked leave one pending signal. In the handler, call \
               waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) in a loop until it \
               returns StillAlive (no more ended children) or an error (ECHILD: no \
               children at all), counting each status.",
        wrong: ("no_zombie", "reaps one child per signal (no loop): four stay zombies"),
        check: checks::zombie::handler,
    },
    Exercise {
        name: "zombie-daemon",
        lab: 3,
        file: "zombie_daemon.rs",
        task: "daemonize with a double fork that leaves no zombie behind",
        goal: "the daemon is adopted and in a session of its own, and the intermediate \
               child is reaped at once by the parent",
        hint: "The intermediate child exits right after forking the daemon, but the parent \
               goes on working for two seconds: it must reap the child with waitpid right \
               after forking it. Waiting for it blocks only for as long as the child takes \
               to fork.",
        wrong: ("no_zombie", "reaps the child only after its own two seconds of work"),
        check: checks::zombie::daemon,
    },
    Exercise {
        name: "orphan-subreaper",
        lab: 4,
        file: "orphan_subreaper.rs",
        task: "make a supervisor adopt and reap its orphaned grandchild",
        goal: "the orphaned grandchild is re-parented to the supervisor, which reaps it",
        hint: "An orphan goes to the nearest ancestor that has asked for it with \
               prctl(PR_SET_CHILD_SUBREAPER) (nix::sys::prctl::set_child_subreaper), else \
               to PID 1. Ask in the supervisor, before it forks.",
        wrong: ("adopted", "sets the subreaper flag in the child instead of the supervisor"),
        check: checks::orphan::subreaper,
    },
    Exercise {
        name: "pipe-eof",
        lab: 5,
        file: "pipe_eof.rs",
        task: "close the forgotten write end, so that the reader sees end of file",
        goal: "the reader ends by itself soon after the writer, having read every byte, \
               and reaps the writer",
        hint: "read returns 0 (end of file) only when no process holds a write end of the \
               pipe any more. fork gave the parent a copy of the write end too: close it \
               (drop(w)) before the reading loop.",
        wrong: ("reader_sees_eof", "stops after 100 ms of silence instead of at end of file"),
        check: checks::pipe::eof,
    },
    Exercise {
        name: "pipe-sigpipe",
        lab: 5,
        file: "pipe_sigpipe.rs",
        task: "make a producer exit 0 when its reader goes away, instead of dying of SIGPIPE",
        goal: "the producer is still writing when the reader leaves, and then ends within \
               2 s with status 0",
        hint: "Ignore SIGPIPE (libc::signal(libc::SIGPIPE, libc::SIG_IGN)): the write then \
               fails with EPIPE instead of killing the process. On EPIPE, exit with status \
               0. Do not ignore the error itself.",
        wrong: ("stopped", "ignores SIGPIPE and the write's error: writes on for 20 s"),
        check: checks::pipe::sigpipe,
    },
    Exercise {
        name: "shm-counter",
        lab: 6,
        file: "shm_counter.rs",
        task: "make a counter in shared memory exact with a process-shared mutex",
        goal: "two children increment at the same time and the shared counter is exactly \
               2 x N",
        hint: "The mutex in the segment was initialised with PTHREAD_PROCESS_SHARED, so it \
               works across processes. Lock it (libc::pthread_mutex_lock(&mut \
               (*shared).lock)) before reading the counter and unlock it after writing, in \
               every process.",
        wrong: ("exact", "a std::sync::Mutex: each process locks its own copy"),
        check: checks::shm::counter,
    },
    Exercise {
        name: "shm-unlink",
        lab: 6,
        file: "shm_unlink.rs",
        task: "unlink a shared-memory name early, so that not even SIGKILL leaves it behind",
        goal: "two processes map the segment, and after they are SIGKILLed no name is left \
               in /dev/shm",
        hint: "shm_unlink removes the name, not the memory: mappings stay valid until \
               unmapped, and a child inherits them at fork. Unlink right after mmap \
               (before fork): from then on, nothing can leave the name behind.",
        wrong: ("no_name_left", "unlinks at the end of main, which SIGKILL never reaches"),
        check: checks::shm::unlink,
    },
    Exercise {
        name: "deadlock-order",
        lab: 7,
        file: "deadlock_order.rs",
        task: "end a deadlock between two threads by taking the locks in one order",
        goal: "the two threads run at the same time, contend for a lock, and finish",
        hint: "A deadlock needs a cycle of waits: A holds `a` and waits for `b` while B \
               holds `b` and waits for `a`. If every thread takes `a` before `b`, nobody \
               can hold `b` while waiting for `a`, and the cycle cannot close.",
        wrong: ("together", "thread A is joined before thread B starts: no concurrency"),
        check: checks::deadlock::order,
    },
    Exercise {
        name: "deadlock-pipes",
        lab: 7,
        file: "deadlock_pipes.rs",
        task: "end a deadlock of two processes that both write a full pipe first",
        goal: "the 1 MiB request and the 1 MiB reply both cross, and the program ends by \
               itself",
        hint: "A pipe holds 64 KiB: a writer of 1 MiB sleeps until the other side reads. \
               Let the child read the whole request before it writes its reply (read until \
               you have SIZE bytes: one read returns at most what the pipe holds).",
        wrong: ("finished", "reads the request with one read before replying"),
        check: checks::deadlock::pipes,
    },
    Exercise {
        name: "tvp-threads",
        lab: 8,
        file: "tvp_threads.rs",
        task: "run four workers as threads, so that their results land in one memory",
        goal: "four worker threads run at once in one process, each using the CPU, and \
               the sum is right",
        hint: "Forked children write into copies of `partial`. std::thread::scope(|s| { \
               for (i, slot) in partial.iter_mut().enumerate() { s.spawn(move || ...); } }) \
               starts threads that may borrow it, and waits for them all at the end.",
        wrong: ("together", "joins each thread right after starting it"),
        check: checks::tvp::threads,
    },
    Exercise {
        name: "pool-retry",
        lab: 9,
        file: "pool_retry.rs",
        task: "retry a killed pool worker's task exactly once, on a replacement worker",
        goal: "the killed worker is reaped, exactly one replacement is forked, and every \
               result arrives once",
        hint: "The end of file on a worker's result pipe means it died; workers[k].busy is \
               the task it had in hand. waitpid its pid, put start_worker() in its place, \
               and write that task to the replacement (setting its busy).",
        wrong: ("results", "the replacement gets the next task, not the lost one"),
        check: checks::pool::retry,
    },
];
