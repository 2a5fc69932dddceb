#!/usr/bin/env python3
"""Per-task overhead of Python's multiprocessing.Pool.map with chunksize=1.

The peer of proclab's `pool` lab (book chapter "A process pool from primitives"): the same
tiny task (one round of the splitmix64 mixer, the lab's `work(x, 1)`), the same number of
worker processes, one task per message. Prints one JSON line:
{"tasks": N, "workers": W, "seconds": S, "per_task_us": U, "checksum": C, ...}

Run by hand:   python3 book/scripts/pool_mp.py --tasks 2000 --workers 4
The lab runs it with `--python auto` (the default) when python3 is on PATH.
"""
import argparse
import ctypes
import json
import multiprocessing
import os
import platform
import signal
import sys
import time

MASK = (1 << 64) - 1


def mix(z):
    """One round of splitmix64, exactly like `mix` in labs/09_pool/task.rs."""
    z = (z + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def tiny(x):
    return mix(x)


def die_with_parent(parent):
    """Pool initializer: a worker is killed when the script dies (PR_SET_PDEATHSIG), so an
    interrupted lab leaves no Python worker behind."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=4)
    a = ap.parse_args()
    if not (1 <= a.tasks <= 1_000_000 and 1 <= a.workers <= 64):
        ap.error("--tasks 1..1000000, --workers 1..64")

    # ANCHOR: map
    ctx = multiprocessing.get_context("fork")  # Linux's default before 3.14
    inputs = list(range(a.tasks))
    dies = dict(initializer=die_with_parent, initargs=(os.getpid(),))
    with ctx.Pool(a.workers, **dies) as pool:
        pool.map(tiny, range(4 * a.workers), chunksize=1)  # warm up: all started
        t0 = time.perf_counter()
        out = pool.map(tiny, inputs, chunksize=1)
        secs = time.perf_counter() - t0
    # ANCHOR_END: map
    checksum = 0
    for v in out:
        checksum = (checksum + v) & MASK
    print(json.dumps({
        "tasks": a.tasks,
        "workers": a.workers,
        "seconds": secs,
        "per_task_us": secs / a.tasks * 1e6,
        "checksum": checksum,
        "python": platform.python_version(),
        "start_method": "fork",
    }))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
