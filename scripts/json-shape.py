#!/usr/bin/env python3
"""The shape of a lab's --json output, to show that a refactor kept its behaviour:
one line per event with its event, kind or check name, ok flag and field names; every
number, pid and timing masked. Usage:
    target/debug/LAB --json | scripts/json-shape.py > before.txt   (then after.txt; diff)"""
import json
import re
import sys

for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    e = json.loads(line)
    what = e.get("kind") or e.get("name") or e.get("title") or ""
    ok = e.get("ok")
    keys = ",".join(sorted(k for k in e if k not in ("event", "lab", "t_us", "section")))
    ok = "" if ok is None else f" ok={ok}"
    what = re.sub(r"\d+", "N", str(what))
    print(f"{e['event']} {what}{ok} [{keys}]")
