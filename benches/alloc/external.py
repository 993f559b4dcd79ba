#!/usr/bin/env python3
"""Runs externally built allocator benchmark programs under each allocator.

Usage (through run.sh): external.py OURS_SO DIR [--passes N]

Every executable file in DIR is run under glibc (no preload), and under
LD_PRELOAD of mimalloc and jemalloc if their shared libraries are found
(MIMALLOC_SO / JEMALLOC_SO override the search), of any library named in
EXTRA_SO ("label=path,..."; say, ours before a change) and of OURS_SO, N passes
(default 3) with the allocator order rotating each pass. Arguments for a
program come from DIR/NAME.args (one line, split on blanks) if that file
exists. A program's time is what it reports if it reports one (larson's
"relative time: Xs", xmalloc-test's "rtime: X", glibc-thread's
"N iterations", taken as 1/N), else its wall-clock time. Prints the median
per program and allocator, the speed relative to glibc (higher is better),
ours / mimalloc, the geometric means, and the peak RSS relative to glibc's.
Nothing is downloaded or built here.
"""

import glob
import math
import os
import re
import statistics
import subprocess
import sys
import time

SEARCH = {
    "mimalloc": ["/usr/lib/x86_64-linux-gnu/libmimalloc.so*", "/usr/lib/*/libmimalloc.so*", "/usr/local/lib/libmimalloc.so*", "/usr/lib/libmimalloc.so*"],
    "jemalloc": ["/usr/lib/x86_64-linux-gnu/libjemalloc.so*", "/usr/lib/*/libjemalloc.so*", "/usr/local/lib/libjemalloc.so*", "/usr/lib/libjemalloc.so*"],
}


def find_so(name):
    env = os.environ.get(name.upper() + "_SO")
    if env:
        return env if os.path.exists(env) else None
    for pattern in SEARCH[name]:
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[0]
    return None


def reported_time(out):
    m = re.search(r"relative time:\s*([0-9.]+)s", out)
    if m:
        return float(m.group(1))
    m = re.search(r"rtime:\s*([0-9.]+)", out)
    if m:
        return float(m.group(1))
    m = re.search(r"^(\d+) iterations$", out, re.M)
    if m and int(m.group(1)) > 0:
        return 1e9 / int(m.group(1))
    return None


# A child forked from this (large) interpreter inherits its peak RSS, so
# the peak is measured by GNU time, whose own children start small; without
# it the RSS table is left out.
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run(exe, args, so):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if so:
        env["LD_PRELOAD"] = so
    rss_file = f"/tmp/external-rss-{os.getpid()}"
    # GNU time runs with the preload too (it allocates little), so the
    # program is its child, started from a small process.
    cmd = ([GNU_TIME, "-f", "%M", "-o", rss_file] if GNU_TIME else []) + [exe] + args
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=os.path.dirname(exe))
    wall = time.monotonic() - start
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        return None, None, f"exit {proc.returncode}: {out.strip()[-200:]}"
    peak = None
    if GNU_TIME:
        try:
            peak = int(open(rss_file).read().split()[-1]) / 1024.0
        except (OSError, ValueError, IndexError):
            peak = None
    t = reported_time(out)
    return (t if t is not None else wall), peak, None


def geomean(v):
    return math.exp(sum(math.log(x) for x in v) / len(v)) if v else float("nan")


def relative(programs, names, table, f):
    """Per program with a glibc figure: name and {allocator: f(glibc median, median)}."""
    for exe in programs:
        name = os.path.basename(exe)
        if not table.get((name, "glibc")):
            continue
        base = statistics.median(table[(name, "glibc")])
        yield name, {a: f(base, statistics.median(table[(name, a)])) if table.get((name, a)) else None for a in names}


def row(name, names, rel):
    return f"{name:<16}" + "".join(f"{rel[a]:>10.2f}" if rel[a] is not None else f"{'-':>10}" for a in names)


def main():
    argv = sys.argv[1:]
    passes = 3
    if "--passes" in argv:
        i = argv.index("--passes")
        passes = int(argv[i + 1])
        del argv[i : i + 2]
    if len(argv) != 2:
        sys.exit("usage: external.py OURS_SO DIR [--passes N]")
    ours, folder = argv
    folder = os.path.abspath(folder)
    allocs = [("glibc", None)]
    for name in ("mimalloc", "jemalloc"):
        so = find_so(name)
        if so:
            allocs.append((name, so))
        else:
            print(f"note: no {name} shared library found (set {name.upper()}_SO); skipped")
    # Extra libraries to compare side by side (say, ours before a change):
    # EXTRA_SO="before=/tmp/old.so,other=/path/lib.so".
    for item in filter(None, os.environ.get("EXTRA_SO", "").split(",")):
        label, _, path = item.partition("=")
        allocs.append((label, os.path.abspath(path)))
    allocs.append(("ours", os.path.abspath(ours)))
    programs = sorted(
        p for p in glob.glob(os.path.join(folder, "*")) if os.path.isfile(p) and os.access(p, os.X_OK) and not p.endswith(".args")
    )
    if not programs:
        sys.exit(f"no executable in {folder}")
    print(f"load average at start: {open('/proc/loadavg').read().split()[:3]}")
    times, rss, failures = {}, {}, []
    for pass_no in range(passes):
        for exe in programs:
            name = os.path.basename(exe)
            args_file = exe + ".args"
            args = open(args_file).read().split() if os.path.exists(args_file) else []
            order = allocs[pass_no % len(allocs) :] + allocs[: pass_no % len(allocs)]
            for alloc, so in order:
                t, r, err = run(exe, args, so)
                if err:
                    failures.append(f"{name} under {alloc}: {err}")
                    continue
                times.setdefault((name, alloc), []).append(t)
                if r is not None:
                    rss.setdefault((name, alloc), []).append(r)
        print(f"pass {pass_no + 1}/{passes} done, load average {open('/proc/loadavg').read().split()[:3]}", flush=True)
    names = [a for a, _ in allocs]
    print()
    print("speed relative to glibc (median time of glibc / median time; higher is better)")
    print(f"{'program':<16}" + "".join(f"{a:>10}" for a in names) + f"{'ours/mim':>10}")
    speeds, ratio = {a: [] for a in names}, []
    for name, rel in relative(programs, names, times, lambda base, v: base / v):
        for a in names:
            if rel.get(a) is not None:
                speeds[a].append(rel[a])
        m, o = times.get((name, "mimalloc")), times.get((name, "ours"))
        extra = ""
        if m and o:
            ratio.append(statistics.median(m) / statistics.median(o))
            extra = f"{ratio[-1]:>10.2f}"
        print(row(name, names, rel) + extra)
    print(f"{'geomean':<16}" + "".join(f"{geomean(speeds[a]):>10.2f}" for a in names) + (f"{geomean(ratio):>10.2f}" if ratio else ""))
    if not rss:
        print("\n(no /usr/bin/time: peak RSS not measured)")
    print()
    print("peak RSS relative to glibc's (median of passes; goal <= 1.10 for ours)")
    print(f"{'program':<16}" + "".join(f"{a:>10}" for a in names) + f"{'glibc MiB':>12}")
    for name, rel in relative(programs, names, rss, lambda base, v: v / base):
        print(row(name, names, rel) + f"{statistics.median(rss[(name, 'glibc')]):>12.1f}")
    print(f"load average at end: {open('/proc/loadavg').read().split()[:3]}")
    if failures:
        print("\nfailures:")
        for f in failures:
            print("  " + f)
        sys.exit(1)


if __name__ == "__main__":
    main()
