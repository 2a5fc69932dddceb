//! The exercises of labs 10 to 15, in the order of the book (exercise_list.rs has the
//! first ones, and the whole list).

use crate::checks;
use crate::exercises::Exercise;

pub const LATER: &[Exercise] = &[
    Exercise {
        name: "prefork-respawn",
        lab: 10,
        file: "prefork_respawn.rs",
        task: "write the prefork master's respawn loop: three workers, whatever is killed",
        goal: "after each kill -9, three workers hold the listening socket again within \
               1.5 s, every dead one is reaped, and every request is answered",
        hint: "waitpid(-1) already tells which worker died. Fork a replacement from the \
               master right there: it inherits the listening socket, like the first ones.",
        wrong: ("restored", "polls kill(pid, 0), which succeeds on a zombie"),
        check: checks::prefork::respawn,
    },
    Exercise {
        name: "prefork-graceful",
        lab: 10,
        file: "prefork_graceful.rs",
        task: "stop a prefork server on SIGTERM without losing the request in hand",
        goal: "after SIGTERM the request in hand is answered, every worker ends and is \
               reaped by the master, and the master exits 0",
        hint: "Call catch_sigterm() in the master too: waitpid then returns EINTR when \
               SIGTERM comes. Send SIGTERM (not SIGKILL) to each worker then, and go on \
               reaping until waitpid says ECHILD.",
        wrong: ("reply", "passes SIGKILL on instead of SIGTERM"),
        check: checks::prefork::graceful,
    },
    Exercise {
        name: "pdeathsig",
        lab: 11,
        file: "pdeathsig.rs",
        task: "make children die with their parent: PDEATHSIG and the getppid re-check",
        goal: "no child outlives its SIGKILLed parent, even one killed while the children \
               were getting ready",
        hint: "In each child: libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL), then \
               compare libc::getppid() with the parent's pid saved before fork: if they \
               differ, the parent died before the prctl and no signal will come, so \
               _exit now.",
        wrong: ("die_with_parent", "PR_SET_PDEATHSIG in the parent: not inherited"),
        check: checks::parent_death::pdeathsig,
    },
    Exercise {
        name: "pgroup-stop",
        lab: 11,
        file: "pgroup_stop.rs",
        task: "stop a server and all its workers with one signal to their process group",
        goal: "the server and its workers, in a group of their own, end together, and the \
               supervisor exits 0 by itself",
        hint: "setpgid(0, 0) in the server (and setpgid(server, server) in the supervisor, \
               whichever runs first) makes a group whose id is the server's pid; the \
               workers it forks join it. killpg(server, SIGTERM) reaches them all.",
        wrong: ("supervisor_survives", "kill(0, SIGTERM): the caller's own group"),
        check: checks::parent_death::pgroup,
    },
    Exercise {
        name: "cow-read-only",
        lab: 12,
        file: "cow_read_only.rs",
        task: "compute a checksum of the parent's 64 MiB in a child without copying a page",
        goal: "the child's checksum is right and it copies next to no memory",
        hint: "After fork every page is shared until someone writes it; the first write \
               copies it (a page fault). Compute x & 0xffff as you add each entry, instead \
               of storing it back into the table (or into a copy of it).",
        wrong: ("no_copy", "masks a copy of the table: 64 MiB of new memory"),
        check: checks::cow::read_only,
    },
    Exercise {
        name: "formation-backoff",
        lab: 13,
        file: "formation_backoff.rs",
        task: "restart a crashing process with a doubling wait, and give up at the fourth",
        goal: "the crasher lives four times, each restart after its wait (100, 200, \
               400 ms), each life reaped by the manager, which then exits 1",
        hint: "Keep a count of the starts. In a loop: waitpid the crasher; if it has \
               started four times, exit 1; else sleep 100 ms << (starts - 1) (100, 200, \
               400), call start_crasher() and count the start.",
        wrong: ("backoff", "restarts at once, with no wait: a restart loop"),
        check: checks::formation::backoff,
    },
    Exercise {
        name: "formation-stop",
        lab: 13,
        file: "formation_stop.rs",
        task: "stop a formation on SIGTERM: a grace period, then SIGKILL for the stubborn",
        goal: "after SIGTERM to the manager, web stops at once, stubborn lives out its \
               grace period and is then killed, both reaped by the manager, which exits 0",
        hint: "Note when the grace period ends (Instant::now() + 500 ms). In a loop: \
               waitpid(-1, WNOHANG); StillAlive: if the time is over, kill(p, SIGKILL) \
               each process not yet reaped (once), then sleep 5 ms; a status: that \
               process is done; ECHILD: none left. Then exit 0.",
        wrong: ("grace", "SIGKILL to every process at once, no grace period"),
        check: checks::formation::stop,
    },
    Exercise {
        name: "pid1-init",
        lab: 14,
        file: "pid1_init.rs",
        task: "write a minimal init: forward SIGTERM, reap every orphan, exit as the app",
        goal: "the app ends soon after the init gets SIGTERM, no process stays a zombie, \
               and the init exits 143",
        hint: "Catch SIGTERM with a handler (sigaction without SA_RESTART, so waitpid \
               returns EINTR) and kill(app, SIGTERM) then. Reap with waitpid(-1) in a loop \
               until ECHILD, not waitpid(app): orphans are your children too. Keep the \
               app's status: 128 + the signal that killed it.",
        wrong: ("no_zombie", "waits for the app only: the adopted orphan stays a zombie"),
        check: checks::pid1::init,
    },
    Exercise {
        name: "io-event-loop",
        lab: 15,
        file: "io_event_loop.rs",
        task: "make a one-thread epoll server serve every client at once, one stalling",
        goal: "20 clients at once are answered within 2 s while one stalls, the stalled \
               one when it finishes, all by one thread and no child",
        hint: "A blocking read waits for one client while the others queue. Call \
               c.conn.set_nonblocking(true), then watch(ep, fd, fd as u64) with fd = \
               c.conn.as_raw_fd(), and clients.insert(fd as u64, c): epoll_wait wakes the \
               loop when that client's bytes come, and serve_ready reads only what is there.",
        wrong: ("one_thread", "a thread per connection: every client answered, not by one thread"),
        check: checks::io_models::event_loop,
    },
    Exercise {
        name: "io-timer",
        lab: 15,
        file: "io_timer.rs",
        task: "make a request's wait a deadline of the event loop, not a sleep",
        goal: "10 requests at once, waiting 100 to 1000 ms, are each answered on time \
               (after its wait, at most 250 ms later), all by one thread",
        hint: "Instead of sleeping, timers.insert((Instant::now() + \
               Duration::from_millis(c.wait_ms), data)). At the top of the loop, timeout = \
               -1 if timers is empty, else the ms until timers.first() (rounded up, so \
               that the loop does not wake a moment early and spin).",
        wrong: ("on_time", "deadlines in the set, but epoll_wait still sleeps for ever"),
        check: checks::io_models::timer,
    },
];
