#!/usr/bin/env python3
"""Start-up cost of powertrain's commands that train nothing: the wall time and
peak memory (the process's maximum resident set, from wait4) of
`powertrain --version`, `powertrain measure -- true` and `powertrain devices`,
the median of --repeats runs each, for one executable or two side by side
(before and after, with their ratios).

    python3 bench/startup.py [--repeats 21] [BEFORE] AFTER

Each run is one fork and exec of the executable with its output thrown away;
the figure is the whole process, LibTorch's loading included where it is
linked. `measure -- true` runs the command `true` under the meters: its
figure includes that command and the meters' start and stop. The peak memory
comes from GNU time (/usr/bin/time -f %M), whose own small process is what the
executable's count starts from; without it, from wait4 here, which counts from
this Python's size (Linux carries a process's peak across exec), so that the
smallest figures read too high.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

GNU_TIME = "/usr/bin/time"

COMMANDS = [["--version"], ["measure", "--", "true"], ["devices"]]


def run_once(binary, args):
    with tempfile.NamedTemporaryFile("r") as peak:
        timed = [GNU_TIME, "-f", "%M", "-o", peak.name] if os.access(GNU_TIME, os.X_OK) else []
        start = time.perf_counter()
        proc = subprocess.Popen(timed + [binary] + args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall_s = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            sys.exit(f"startup: {binary} {' '.join(args)} exited with {code}")
        kib = int(peak.read().split()[-1]) if timed else usage.ru_maxrss  # both in KiB
    return wall_s, kib / 1024.0


def measure(binaries, args, repeats):
    """Medians per binary; the binaries take turns, so that the machine's other
    load falls on each alike."""
    for b in binaries:
        run_once(b, args)  # warm the page cache
    runs = [[] for _ in binaries]
    for _ in range(repeats):
        for i, b in enumerate(binaries):
            runs[i].append(run_once(b, args))
    return [(statistics.median(w for w, _ in r) * 1000.0, statistics.median(m for _, m in r)) for r in runs]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=21)
    p.add_argument("binaries", nargs="+", help="[BEFORE] AFTER: powertrain executables")
    a = p.parse_args()
    if len(a.binaries) > 2:
        p.error("one or two executables")
    names = ["before", "after"] if len(a.binaries) == 2 else ["powertrain"]
    head = f"{'command':<18}" + "".join(f"{n + ' ms':>14}{n + ' MiB':>14}" for n in names)
    if len(a.binaries) == 2:
        head += f"{'wall ratio':>12}{'memory ratio':>14}"
    print(f"median of {a.repeats} runs each; {', '.join(f'{n}: {b}' for n, b in zip(names, a.binaries))}")
    print(head)
    for args in COMMANDS:
        figures = measure(a.binaries, args, a.repeats)
        line = f"{' '.join(args):<18}" + "".join(f"{w:>14.1f}{m:>14.1f}" for w, m in figures)
        if len(figures) == 2:
            (w0, m0), (w1, m1) = figures
            line += f"{w1 / w0:>12.3f}{m1 / m0:>14.3f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
