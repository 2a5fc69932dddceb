/* refbench.c: proclab's C reference. Each figure does exactly the work of the Rust
 * figure of the same name in benches/versus_c/work.rs: the same system calls, sizes,
 * CPU placement and iteration structure; every iteration is timed alone.
 *
 * `cargo bench --bench versus_c` (and `lab benchmarks`) builds it twice with `cc`:
 *   cc -O2 -pthread -shared -fPIC refbench.c -o librefbench.so   loaded by the Rust
 *       driver, which alternates a Rust round and a C round in the same process
 *   cc -O2 -pthread refbench.c -o refbench                       a process of its own
 * Run by hand:
 *   ./refbench NAME...                  one round of each, its median per iteration
 *   ./refbench --round NAME WARM ITERS  one round: a facts line, then ITERS times in ns
 *
 * A name says its work: KIND[_SIZE][_PLACEMENT], e.g. pipe_bw_64MiB_cross_cpu.
 * PLACEMENT: same_cpu = both processes on CPU 0, cross_cpu = parent on CPU 0 and child
 * on CPU 1, none = wherever the scheduler puts them. SIZE: the working set of a copy
 * (64KiB stays in cache, 64MiB does not). A bandwidth iteration moves BLOCK bytes in
 * CHUNK steps through the working set.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <linux/futex.h>
#include <time.h>
#include <unistd.h>

typedef uint64_t u64;
extern char **environ;

enum { CHUNK = 64 << 10, BLOCK = 1 << 20, SLOTS = 8 };
enum place { UNPINNED, SAME_CPU, CROSS_CPU };

struct fig {
    char kind[64];
    size_t wset;
    enum place place;
};

static void fail(const char *what) {
    fprintf(stderr, "refbench: %s: %s\n", what, strerror(errno));
    exit(1);
}

static u64 now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (u64)t.tv_sec * 1000000000u + (u64)t.tv_nsec;
}

/* ------------------------------------------------------------ placement */

static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    if (sched_setaffinity(0, sizeof s, &s)) fail("sched_setaffinity");
}

static void unpin(void) { /* every online CPU, as proclab::cpu::unpin */
    cpu_set_t s;
    CPU_ZERO(&s);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    for (long c = 0; c < n; c++) CPU_SET(c, &s);
    if (sched_setaffinity(0, sizeof s, &s)) fail("sched_setaffinity");
}

/* The parent goes on CPU 0 for the whole round; its children inherit that. */
static void round_begin(const struct fig *f) {
    if (f->place != UNPINNED) pin(0);
}
static void round_end(const struct fig *f) {
    if (f->place != UNPINNED) unpin();
}
/* Right after fork, in the child: across CPUs, it moves to CPU 1. */
static void child_place(const struct fig *f) {
    if (f->place == CROSS_CPU) pin(1);
}

/* ------------------------------------------------------------ processes */

static pid_t fork_or_fail(void) {
    pid_t p = fork();
    if (p < 0) fail("fork");
    return p;
}

static void wait_ok(pid_t pid) {
    int st;
    if (waitpid(pid, &st, 0) != pid) fail("waitpid");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "refbench: child %d status %#x\n", pid, st);
        exit(1);
    }
}

static char *true_argv[] = {"true", NULL};

static int vfork_child(void *arg) {
    (void)arg;
    execve("/bin/true", true_argv, environ);
    _exit(127);
}

static void *noop(void *arg) { return arg; }

/* One timed iteration: `body` once; warm-up iterations (i < 0) are not recorded. */
#define TIMED(warm, iters, out, ...)                    \
    for (int i_ = -(warm); i_ < (iters); i_++) {        \
        u64 t0_ = now_ns();                             \
        __VA_ARGS__;                                    \
        u64 t_ = now_ns() - t0_;                        \
        if (i_ >= 0) (out)[i_] = t_;                    \
    }

static void spawn_round(const struct fig *f, int warm, int iters, u64 *out) {
    const char *k = f->kind;
    if (!strcmp(k, "pthread_create_join")) {
        TIMED(warm, iters, out, {
            pthread_t t;
            if ((errno = pthread_create(&t, NULL, noop, NULL))) fail("pthread_create");
            if ((errno = pthread_join(t, NULL))) fail("pthread_join");
        });
    } else if (!strcmp(k, "fork_exit_wait")) {
        TIMED(warm, iters, out, {
            pid_t p = fork_or_fail(); /* copies the page tables, shares every page */
            if (p == 0) _exit(0);
            wait_ok(p);
        });
    } else if (!strcmp(k, "vfork_true_wait")) {
        size_t len = 64 << 10;
        char *stack = malloc(len);
        if (!stack) fail("malloc");
        void *top = (void *)(((uintptr_t)stack + len) & ~(uintptr_t)15);
        TIMED(warm, iters, out, {
            pid_t p = clone(vfork_child, top, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
            if (p < 0) fail("clone");
            wait_ok(p);
        });
        free(stack);
    } else if (!strcmp(k, "fork_exec_true_wait")) {
        TIMED(warm, iters, out, {
            pid_t p = fork_or_fail();
            if (p == 0) {
                execve("/bin/true", true_argv, environ);
                _exit(127);
            }
            wait_ok(p);
        });
    } else if (!strcmp(k, "posix_spawn_true_wait")) {
        TIMED(warm, iters, out, {
            pid_t p;
            if ((errno = posix_spawn(&p, "/bin/true", NULL, NULL, true_argv, environ)))
                fail("posix_spawn");
            wait_ok(p);
        });
    }
}

/* ------------------------------------------------------------ round trips */

static void *shared_map(size_t len) {
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) fail("mmap");
    return p;
}

static void futex_wait(uint32_t *w, uint32_t expected) {
    syscall(SYS_futex, w, FUTEX_WAIT, expected, NULL); /* shared: not FUTEX_PRIVATE */
}
static void futex_wake(uint32_t *w) { syscall(SYS_futex, w, FUTEX_WAKE, 1); }

/* One byte there and back. The child reads `crd` and answers on `cwr` until end of file;
 * the parent writes `pwr` and reads `prd` (a socket is one fd for both ways). Each side
 * closes the other's fds. */
static void close_pair(int rd, int wr) {
    close(rd);
    if (wr != rd) close(wr);
}

static void echo_round(const struct fig *f, int warm, int iters, u64 *out,
                       int prd, int pwr, int crd, int cwr) {
    pid_t p = fork_or_fail();
    if (p == 0) {
        child_place(f);
        close_pair(prd, pwr);
        char c;
        for (;;) {
            if (read(crd, &c, 1) != 1) _exit(0); /* end of file: the parent is done */
            if (write(cwr, &c, 1) != 1) _exit(1);
        }
    }
    close_pair(crd, cwr);
    char c = 'x';
    TIMED(warm, iters, out, {
        if (write(pwr, &c, 1) != 1) fail("write");
        if (read(prd, &c, 1) != 1) fail("read");
    });
    close_pair(prd, pwr); /* the child reads end of file and exits */
    wait_ok(p);
}

static void futex_round(const struct fig *f, int warm, int iters, u64 *out) {
    /* The word: 1 = ping (parent to child), 2 = pong, 3 = stop. */
    uint32_t *flag = shared_map(4096);
    pid_t p = fork_or_fail();
    if (p == 0) {
        child_place(f);
        for (;;) {
            uint32_t v = __atomic_load_n(flag, __ATOMIC_ACQUIRE);
            while (v != 1 && v != 3) {
                futex_wait(flag, v);
                v = __atomic_load_n(flag, __ATOMIC_ACQUIRE);
            }
            if (v == 3) _exit(0);
            __atomic_store_n(flag, 2, __ATOMIC_RELEASE);
            futex_wake(flag);
        }
    }
    TIMED(warm, iters, out, {
        __atomic_store_n(flag, 1, __ATOMIC_RELEASE);
        futex_wake(flag);
        while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) != 2) futex_wait(flag, 1);
    });
    __atomic_store_n(flag, 3, __ATOMIC_RELEASE);
    futex_wake(flag);
    wait_ok(p);
    munmap(flag, 4096);
}

static void rtt_round(const struct fig *f, int warm, int iters, u64 *out) {
    if (!strcmp(f->kind, "pipe_rtt")) {
        int there[2], back[2];
        if (pipe(there) || pipe(back)) fail("pipe");
        echo_round(f, warm, iters, out, back[0], there[1], there[0], back[1]);
    } else if (!strcmp(f->kind, "socketpair_rtt")) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) fail("socketpair");
        echo_round(f, warm, iters, out, sv[0], sv[0], sv[1], sv[1]);
    } else {
        futex_round(f, warm, iters, out);
    }
}

/* ------------------------------------------------------------ bandwidth */

/* A working set filled with `byte`: malloc'd and written, so that no page fault is
 * left for the timed part. Never 0: the compiler turns malloc + memset(0) into calloc,
 * which leaves fresh pages untouched. */
static char *filled(size_t len, int byte) {
    char *p = malloc(len);
    if (!p) fail("malloc");
    memset(p, byte, len);
    return p;
}

static void relax(unsigned *spins) { /* as std::hint::spin_loop, then yield */
    if (++*spins >= 200) sched_yield();
#if defined(__x86_64__) || defined(__i386__)
    else __builtin_ia32_pause();
#elif defined(__aarch64__)
    else __asm__ volatile("isb");
#endif
}

static void memcpy_round(const struct fig *f, int warm, int iters, u64 *out) {
    char *src = filled(f->wset, 1), *dst = filled(f->wset, 2);
    size_t off = 0;
    TIMED(warm, iters, out, {
        for (int k = 0; k < BLOCK / CHUNK; k++) {
            memcpy(dst + off, src + off, CHUNK);
            __asm__ volatile("" ::: "memory"); /* every copy happens */
            off = (off + CHUNK) % f->wset;
        }
    });
    if (dst[0] != 1) fail("memcpy check");
    free(src), free(dst);
}

/* The producer's side of a pipe (or a socket): CHUNK bytes at a time from `src`, by write(2) or by
 * vmsplice(2) (which lends the pages to the pipe instead of copying them). */
static void pipe_send(int fd, const char *src, size_t wset, long chunks, int lend) {
    size_t off = 0;
    for (long k = 0; k < chunks; k++) {
        struct iovec v = {(void *)(src + off), CHUNK};
        while (v.iov_len) {
            ssize_t n = lend ? vmsplice(fd, &v, 1, 0) : write(fd, v.iov_base, v.iov_len);
            if (n <= 0) _exit(1);
            v.iov_base = (char *)v.iov_base + n;
            v.iov_len -= n;
        }
        off = (off + CHUNK) % wset;
    }
}

/* The consumer's side: one BLOCK, read(2) into `dst` (at *off in the working set), or,
 * with `devnull` >= 0, splice(2)d to /dev/null without touching the bytes. */
static void pipe_recv(int fd, char *dst, size_t wset, size_t *off, int devnull) {
    size_t left = BLOCK;
    while (left) {
        size_t n = left < CHUNK ? left : CHUNK;
        ssize_t got;
        if (devnull >= 0) {
            got = splice(fd, NULL, devnull, NULL, n, 0);
        } else {
            if (n > wset - *off) n = wset - *off;
            got = read(fd, dst + *off, n);
            if (got > 0) *off = (*off + got) % wset;
        }
        if (got <= 0) fail("read/splice");
        left -= got;
    }
}

struct ring {
    u64 *head, *tail; /* chunks published, chunks consumed */
    char *slots;
};

static void shm_send(struct ring *r, const char *src, size_t wset, u64 chunks) {
    size_t off = 0;
    for (u64 i = 0; i < chunks; i++) {
        unsigned spins = 0;
        while (i - __atomic_load_n(r->tail, __ATOMIC_ACQUIRE) >= SLOTS) relax(&spins);
        memcpy(r->slots + (i % SLOTS) * CHUNK, src + off, CHUNK);
        __atomic_store_n(r->head, i + 1, __ATOMIC_RELEASE);
        off = (off + CHUNK) % wset;
    }
}

static void shm_recv(struct ring *r, u64 *next, char *dst, size_t wset, size_t *off) {
    for (int k = 0; k < BLOCK / CHUNK; k++, ++*next) {
        unsigned spins = 0;
        while (__atomic_load_n(r->head, __ATOMIC_ACQUIRE) <= *next) relax(&spins);
        memcpy(dst + *off, r->slots + (*next % SLOTS) * CHUNK, CHUNK);
        __atomic_store_n(r->tail, *next + 1, __ATOMIC_RELEASE);
        *off = (*off + CHUNK) % wset;
    }
}

/* A child produces (warm + iters) BLOCKs from its working set; the parent consumes them
 * into its own and times each BLOCK from the end of the previous one. */
static void stream_round(const struct fig *f, int warm, int iters, u64 *out) {
    const char *k = f->kind;
    int shm = !strcmp(k, "shm_bw"), lend = !strncmp(k, "vmsplice", 8);
    long chunks = (long)(warm + iters) * (BLOCK / CHUNK);
    int fds[2] = {-1, -1};
    struct ring ring = {0};
    char *map = NULL;
    size_t map_len = 4096 + SLOTS * CHUNK;
    if (shm) {
        map = shared_map(map_len);
        ring = (struct ring){(u64 *)map, (u64 *)(map + 64), map + 4096};
    } else if (!strcmp(k, "socketpair_bw")) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds)) fail("socketpair");
    } else if (pipe(fds)) {
        fail("pipe");
    }
    char *src = filled(f->wset, 7); /* before fork: the child only reads it */
    pid_t p = fork_or_fail();
    if (p == 0) {
        child_place(f);
        if (shm) {
            shm_send(&ring, src, f->wset, chunks);
        } else {
            close(fds[0]);
            pipe_send(fds[1], src, f->wset, chunks, lend);
        }
        _exit(0);
    }
    if (!shm) close(fds[1]);
    int devnull = -1;
    if (!strcmp(k, "vmsplice_splice_bw") && (devnull = open("/dev/null", O_WRONLY)) < 0)
        fail("open /dev/null");
    char *dst = filled(f->wset, 2); /* after fork: no copy-on-write fault when written */
    size_t off = 0;
    u64 next = 0, prev = now_ns();
    for (int b = -warm; b < iters; b++) {
        if (shm) shm_recv(&ring, &next, dst, f->wset, &off);
        else pipe_recv(fds[0], dst, f->wset, &off, devnull);
        u64 t = now_ns();
        if (b >= 0) out[b] = t - prev;
        prev = t;
    }
    size_t seen = (size_t)(warm + iters) * BLOCK, last = (seen < f->wset ? seen : f->wset) - 1;
    if (devnull < 0 && (dst[0] != 7 || dst[last] != 7)) fail("data check");
    wait_ok(p);
    if (devnull >= 0) close(devnull);
    if (shm) munmap(map, map_len);
    else close(fds[0]);
    free(src), free(dst);
}

/* ------------------------------------------------------------ names and rounds */

static const char *const spawn_kinds[] = {"pthread_create_join", "fork_exit_wait",
    "vfork_true_wait", "fork_exec_true_wait", "posix_spawn_true_wait", NULL};
static const char *const rtt_kinds[] = {"pipe_rtt", "socketpair_rtt", "futex_rtt", NULL};
static const char *const bw_kinds[] = {"pipe_bw", "socketpair_bw", "shm_bw",
    "vmsplice_read_bw", "vmsplice_splice_bw", NULL};

static int listed(const char *const *list, const char *k) {
    for (; *list; list++)
        if (!strcmp(*list, k)) return 1;
    return 0;
}

static int strip(char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    if (n <= m || strcmp(s + n - m, suffix)) return 0;
    s[n - m] = 0;
    return 1;
}

/* KIND[_SIZE][_PLACEMENT] -> fig; 0 for a name this reference does not know. */
static int parse(const char *name, struct fig *f) {
    if (strlen(name) >= sizeof f->kind) return 0;
    strcpy(f->kind, name);
    f->place = strip(f->kind, "_same_cpu")    ? SAME_CPU
               : strip(f->kind, "_cross_cpu") ? CROSS_CPU
                                              : (strip(f->kind, "_unpinned"), UNPINNED);
    f->wset = strip(f->kind, "_64KiB") ? 64 << 10 : strip(f->kind, "_64MiB") ? 64 << 20 : 0;
    const char *k = f->kind;
    if (listed(spawn_kinds, k) || listed(rtt_kinds, k)) return f->wset == 0;
    if (!strcmp(k, "memcpy") || listed(bw_kinds, k)) return f->wset != 0;
    return 0;
}

/* Run one round of figure `name`: `warm` untimed iterations, then `iters` timed ones,
 * each iteration's time in ns into out[0..iters). Returns 0, or -1 for an unknown name. */
int refbench_round(const char *name, int warm, int iters, u64 *out) {
    struct fig f;
    if (!parse(name, &f)) return -1;
    round_begin(&f);
    if (listed(spawn_kinds, f.kind)) spawn_round(&f, warm, iters, out);
    else if (listed(rtt_kinds, f.kind)) rtt_round(&f, warm, iters, out);
    else if (!strcmp(f.kind, "memcpy")) memcpy_round(&f, warm, iters, out);
    else stream_round(&f, warm, iters, out);
    round_end(&f);
    return 0;
}

/* ------------------------------------------------------------ a process of its own */

static long status_kib(const char *field) {
    FILE *s = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (s && fgets(line, sizeof line, s))
        if (!strncmp(line, field, n) && line[n] == ':') v = atol(line + n + 1);
    if (s) fclose(s);
    return v;
}

static long vma_count(void) {
    FILE *m = fopen("/proc/self/maps", "r");
    long n = 0;
    for (int c; m && (c = fgetc(m)) != EOF;) n += c == '\n';
    if (m) fclose(m);
    return n;
}

/* Page faults, voluntary switches (waits) and involuntary ones (preemptions), of the
 * process and its reaped children, as the driver's `usage`. */
static void usage(long u[3]) {
    struct rusage s, c;
    getrusage(RUSAGE_SELF, &s);
    getrusage(RUSAGE_CHILDREN, &c);
    u[0] = s.ru_minflt + c.ru_minflt + s.ru_majflt + c.ru_majflt;
    u[1] = s.ru_nvcsw + c.ru_nvcsw;
    u[2] = s.ru_nivcsw + c.ru_nivcsw;
}

static int cmp_u64(const void *a, const void *b) {
    u64 x = *(const u64 *)a, y = *(const u64 *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "--round")) {
        int warm = atoi(argv[3]), iters = atoi(argv[4]);
        u64 *out = calloc(iters > 0 ? iters : 1, sizeof *out);
        long u0[3], u1[3], rss = status_kib("VmRSS"), vmas = vma_count();
        usage(u0);
        if (!out || iters <= 0 || refbench_round(argv[2], warm, iters, out)) {
            fprintf(stderr, "refbench: cannot run %s\n", argv[2]);
            return 2;
        }
        usage(u1);
        printf("facts rss_kib=%ld vmas=%ld faults=%ld switches=%ld preempted=%ld\n", rss,
               vmas, u1[0] - u0[0], u1[1] - u0[1], u1[2] - u0[2]);
        for (int i = 0; i < iters; i++) printf("%llu\n", (unsigned long long)out[i]);
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: refbench NAME... | refbench --round NAME WARM ITERS\n");
        return 2;
    }
    enum { ITERS = 100 };
    u64 out[ITERS];
    for (int a = 1; a < argc; a++) {
        if (refbench_round(argv[a], ITERS / 10, ITERS, out)) {
            fprintf(stderr, "refbench: no figure %s\n", argv[a]);
            return 2;
        }
        qsort(out, ITERS, sizeof *out, cmp_u64);
        printf("%s\t%.3f\tus per iteration (median of %d)\n", argv[a], out[ITERS / 2] / 1e3,
               ITERS);
    }
    return 0;
}
