#!/usr/bin/env python3
"""Three ways of charging a command its own energy, alone and beside a noisy neighbour.

The same CPU burn (`powertrain burn --seconds S --threads N`) is measured, repeatedly,
once with the machine left to itself ("alone") and once while a neighbour process that
is not part of the measured command keeps another core busy ("beside"). For each run
three figures are set side by side:

  1. powertrain measure: the command's own energy_j and the whole machine's
     machine_energy_j (what the meters, or here the estimate, read);
  2. CodeCarbon's process mode (OfflineEmissionsTracker with tracking_mode="process",
     so no network is needed) wrapped around running the same burn as a subprocess;
  3. the plain CPU-time split that Scaphandre documents: the machine's energy times
     the command's share of the machine's busy CPU time, with no idle power set
     aside. Scaphandre (and Kepler, whose ratio model divides power by usage in a
     similar way) is not installed: this is the rule applied to powertrain's readings
     of the same run (machine_energy_j and the cpu_time section of its JSON), not
     their software.

powertrain's run and CodeCarbon's run are separate burns of the same command, one
after the other, in the same condition. The machine may be shared: every run records
how much of the machine's busy CPU time was neither the command, the neighbour, nor
the measuring tool ("others' share"), so a reader can see how alone "alone" was;
--quiet-wait-s waits for a quiet machine before each measurement, and the report
adds a summary of the repeats whose runs all had little foreign load.

Usage: attribution_peers.py POWERTRAIN [REPEATS] [--seconds S] [--threads N]
           [--neighbour burn|python] [--pin CPU] [--quiet-wait-s S] [--quiet-below CPUS]
           [--quiet-share F] [--measure-power-secs S] [--raw FILE]
Needs a Python with codecarbon (e.g. python3 -m venv /tmp/ccvenv &&
/tmp/ccvenv/bin/pip install codecarbon); exits 1 with a one-line error otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import NoReturn, Optional

KWH_TO_J = 3.6e6


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


# --- the machine's busy CPU time, counted as powertrain counts it (/proc/stat) ---

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """Busy CPU-seconds of the whole machine since boot: user+nice+system+irq+softirq."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = f.readline().split()
    if not fields or fields[0] != "cpu":
        fail("/proc/stat has no 'cpu' line; this benchmark needs Linux")
    v = [int(x) for x in fields[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / _TICKS_PER_S


def wait_until_quiet(below_cores: float, max_wait_s: float) -> float:
    """Waits (at most max_wait_s) for a 3-second window in which the machine keeps fewer
    than below_cores CPUs busy; returns the busy CPUs of the last window."""
    deadline = time.monotonic() + max_wait_s
    while True:
        b0, t0 = machine_busy_s(), time.monotonic()
        time.sleep(3.0)
        busy = (machine_busy_s() - b0) / (time.monotonic() - t0)
        if busy < below_cores or time.monotonic() >= deadline:
            return busy


def children_cpu_s() -> float:
    """CPU-seconds of this script's reaped children (user + system)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# --- the neighbour: a process outside the measured command keeping a core busy ---


class Neighbour:
    """Starts a CPU-bound process before a measurement and stops it after.

    The neighbour must be outside every measured process tree. powertrain measure
    only follows the command it starts, but CodeCarbon's process mode follows every
    descendant of the Python process that hosts the tracker -- this script -- so a
    neighbour started as our child would be charged to the burn. It is therefore
    started through a shell that exits at once (the neighbour is re-parented away
    from this script), in its own session, and it ends on its own after `limit_s`
    should this script die before stopping it.
    """

    def __init__(self, kind: str, powertrain: str, limit_s: float):
        if kind == "burn":
            self.argv = [powertrain, "burn", "--seconds", f"{limit_s:g}", "--threads", "1"]
        else:
            loop = f"import time\nt=time.time()\nwhile time.time()-t<{limit_s:g}: pass\n"
            self.argv = [sys.executable, "-c", loop]
        self.pid: Optional[int] = None

    def _stat(self) -> Optional[list[str]]:
        try:
            with open(f"/proc/{self.pid}/stat", encoding="ascii") as f:
                return f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None

    def alive(self) -> bool:
        """Whether our neighbour still runs (a PID reused by another program is not it)."""
        st = self._stat()
        if st is None or st[0] == "Z":
            return False
        try:
            with open(f"/proc/{self.pid}/cmdline", "rb") as f:
                first = f.read().split(b"\0", 1)[0].decode(errors="replace")
        except OSError:
            return False
        return first == self.argv[0]

    def __enter__(self) -> "Neighbour":
        shell = subprocess.run(["sh", "-c", '"$@" >/dev/null 2>&1 </dev/null & echo $!', "sh", *self.argv],
                               capture_output=True, text=True, start_new_session=True)
        try:
            self.pid = int(shell.stdout.strip())
        except ValueError:
            fail(f"could not start the neighbour ({shlex.join(self.argv)}): {shell.stderr.strip()}")
        time.sleep(1.0)  # let it reach full speed before the measurement starts
        if not self.alive():
            fail(f"the neighbour exited early ({shlex.join(self.argv)})")
        return self

    def cpu_s(self) -> float:
        """The neighbour's CPU-seconds so far (user + system, all its threads)."""
        st = self._stat()
        if st is None:
            fail(f"the neighbour (pid {self.pid}) vanished during the measurement")
        return (int(st[11]) + int(st[12])) / _TICKS_PER_S  # utime, stime (fields 14, 15)

    def __exit__(self, *exc) -> None:
        if self.pid is None or not self.alive():
            return
        os.kill(self.pid, signal.SIGTERM)  # our own neighbour, by its id
        for _ in range(100):
            if not self.alive():
                return
            time.sleep(0.1)
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)


# --- one measured run of each kind ---


@dataclass
class PowertrainRun:
    energy_j: float
    machine_energy_j: float
    split_j: float  # machine_energy_j * command_s / machine_s: the plain CPU-time split
    duration_s: float
    machine_cpu_s: float
    command_cpu_s: float
    powertrain_cpu_s: float
    others_cpu_s: float  # powertrain's "others": everything outside the command and powertrain
    neighbour_cpu_s: float  # the neighbour's part of it (0 alone)
    method: str
    attribution: str
    channels: str  # each channel's attribution, as powertrain states it


@dataclass
class CodeCarbonRun:
    energy_j: float
    cpu_j: float
    ram_j: float
    duration_s: float
    burn_cpu_s: float  # what the kernel says the burn used (rusage of the reaped child)
    seen_cpu_s: Optional[float]  # the CPU-seconds CodeCarbon's CPU figure stands for
    machine_cpu_s: float
    tracker_cpu_s: float  # this Python process (CodeCarbon's sampling thread) during the run
    others_cpu_s: float  # everything but the burn and this Python process
    neighbour_cpu_s: float  # the neighbour's part of it (0 alone)
    cpu_model: str


@dataclass
class Pair:
    repeat: int
    condition: str  # "alone" or "beside"
    powertrain: PowertrainRun
    codecarbon: CodeCarbonRun


def neighbour_cpu(n: Optional[Neighbour]) -> float:
    return n.cpu_s() if n is not None else 0.0


def pinned(cpu: Optional[int]):
    """A preexec_fn that confines the child (and so everything it starts) to one CPU."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def run_powertrain(powertrain: str, burn: list[str], workdir: str, tag: str,
                   neighbour: Optional[Neighbour], pin: Optional[int]) -> PowertrainRun:
    report = os.path.join(workdir, f"measure-{tag}.json")
    argv = [powertrain, "measure", "--json", "-o", report, "--", *burn]
    n0 = neighbour_cpu(neighbour)
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          preexec_fn=pinned(pin))
    n1 = neighbour_cpu(neighbour)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        fail(f"{shlex.join(argv)} exited {done.returncode}: {last}")
    with open(report, encoding="utf-8") as f:
        m = json.load(f)
    cpu = m.get("cpu_time")
    if not cpu:
        fail(f"{report} has no cpu_time section: this powertrain does not report the run's CPU time")
    machine_s, command_s = float(cpu["machine_s"]), float(cpu["command_s"])
    share = min(1.0, command_s / machine_s) if machine_s > 0 else 1.0
    return PowertrainRun(
        energy_j=float(m["energy_j"]),
        machine_energy_j=float(m["machine_energy_j"]),
        split_j=float(m["machine_energy_j"]) * share,
        duration_s=float(m["duration_s"]),
        machine_cpu_s=machine_s,
        command_cpu_s=command_s,
        powertrain_cpu_s=float(cpu["powertrain_s"]),
        others_cpu_s=float(cpu["others_s"]),
        neighbour_cpu_s=n1 - n0,
        method=str(m.get("method", "")),
        attribution=str(m.get("attribution", "")),
        channels="; ".join(f"{c.get('id')}: {c.get('attribution', '')}" for c in m.get("channels", [])),
    )


def run_codecarbon(burn: list[str], measure_power_secs: float, neighbour: Optional[Neighbour],
                   pin: Optional[int]) -> CodeCarbonRun:
    from codecarbon import OfflineEmissionsTracker

    tracker = OfflineEmissionsTracker(
        country_iso_code="FRA",  # offline: no network look-up; the country only sets the carbon figure
        tracking_mode="process",
        measure_power_secs=measure_power_secs,
        save_to_file=False,
        log_level="error",
        project_name="attribution_peers",
    )
    tracker.start()
    m0, c0, p0, n0 = machine_busy_s(), children_cpu_s(), time.process_time(), neighbour_cpu(neighbour)
    done = subprocess.run(burn, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          preexec_fn=pinned(pin))
    m1, c1, p1, n1 = machine_busy_s(), children_cpu_s(), time.process_time(), neighbour_cpu(neighbour)
    tracker.stop()
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        fail(f"{shlex.join(burn)} exited {done.returncode} under CodeCarbon: {last}")
    d = tracker.final_emissions_data
    if d is None:
        fail("CodeCarbon returned no emissions data")
    cpu_j = float(d.cpu_energy) * KWH_TO_J
    # CodeCarbon's process mode without RAPL charges tdp * (tree CPU-s / wall-s / cpus):
    # turn its CPU energy back into the CPU-seconds it saw, where the model is readable.
    seen = None
    for hw in getattr(tracker, "_hardware", []):
        tdp, cpus = getattr(hw, "_tdp", None), getattr(hw, "_cpu_count", None)
        if tdp and cpus and type(hw).__name__ == "CPU":
            seen = cpu_j / (float(tdp) / float(cpus))
    machine_s, burn_s, tracker_s = m1 - m0, c1 - c0, p1 - p0
    others_s = max(0.0, machine_s - burn_s - tracker_s)
    return CodeCarbonRun(
        energy_j=float(d.energy_consumed) * KWH_TO_J,
        cpu_j=cpu_j,
        ram_j=float(d.ram_energy) * KWH_TO_J,
        duration_s=float(d.duration),
        burn_cpu_s=burn_s,
        seen_cpu_s=seen,
        machine_cpu_s=machine_s,
        tracker_cpu_s=tracker_s,
        others_cpu_s=others_s,
        neighbour_cpu_s=n1 - n0,
        cpu_model=str(d.cpu_model),
    )


# --- the report ---


def med(values: list[float]) -> float:
    return statistics.median(values)


def fmt_ratio(beside: float, alone: float) -> str:
    return f"{beside / alone:.2f}x" if alone > 0 else "n/a"


# (label, figure of a run, the burn's CPU-seconds in that same run)
ROWS = [
    ("powertrain measure: the command's own `energy_j`",
     lambda p: p.powertrain.energy_j, lambda p: p.powertrain.command_cpu_s),
    ("powertrain measure: the machine's `machine_energy_j`",
     lambda p: p.powertrain.machine_energy_j, lambda p: p.powertrain.command_cpu_s),
    ("CodeCarbon process mode: `energy_consumed` (CPU + RAM)",
     lambda p: p.codecarbon.energy_j, lambda p: p.codecarbon.burn_cpu_s),
    ("&nbsp;&nbsp;of which CPU", lambda p: p.codecarbon.cpu_j, lambda p: p.codecarbon.burn_cpu_s),
    ("&nbsp;&nbsp;of which RAM", lambda p: p.codecarbon.ram_j, lambda p: p.codecarbon.burn_cpu_s),
    ("CPU-time split (Scaphandre's rule, on powertrain's readings)",
     lambda p: p.powertrain.split_j, lambda p: p.powertrain.command_cpu_s),
]


def summary(pairs: list[Pair]) -> list[str]:
    alone = [p for p in pairs if p.condition == "alone"]
    beside = [p for p in pairs if p.condition == "beside"]
    out = ["| rule | median J alone | median J beside | beside / alone "
           "| median J per burn CPU-s alone | beside | beside / alone |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for name, get, cpu in ROWS:
        a, b = med([get(p) for p in alone]), med([get(p) for p in beside])
        ka = med([get(p) / cpu(p) for p in alone if cpu(p) > 0])
        kb = med([get(p) / cpu(p) for p in beside if cpu(p) > 0])
        out.append(f"| {name} | {a:.1f} | {b:.1f} | {fmt_ratio(b, a)} | {ka:.2f} | {kb:.2f} | {fmt_ratio(kb, ka)} |")
    return out


def quiet_repeats(pairs: list[Pair], below: float) -> list[int]:
    """Repeats whose four runs all had less than `below` of others' CPU share."""
    out = []
    for i in sorted({p.repeat for p in pairs}):
        runs = [p for p in pairs if p.repeat == i]
        if len(runs) == 2 and all(others_share(p, w) < below for p in runs for w in ("pt", "cc")):
            out.append(i)
    return out


def render(pairs: list[Pair], command: str, versions: dict, args: argparse.Namespace) -> str:
    out = []
    pin = f", measured command pinned to CPU {args.pin}" if args.pin is not None else ""
    out.append(f"Burn: `{shlex.join(burn_argv(args))}`, {args.repeats} repeats per condition{pin}, "
               f"neighbour: {args.neighbour} (1 thread, outside the command). All figures are "
               f"estimates (no RAPL, no GPU here), in joules; medians over the repeats.\n")
    out += summary(pairs)
    out.append("")
    quiet = quiet_repeats(pairs, args.quiet_share)
    if quiet:
        out.append(f"The same over the repeats in which all four runs had less than {args.quiet_share:.0%} of "
                   f"others' CPU share (repeats {', '.join(map(str, quiet))}; a subset, not chosen by result):\n")
        out += summary([p for p in pairs if p.repeat in quiet])
    else:
        out.append(f"No repeat had all four runs below {args.quiet_share:.0%} of others' CPU share.")
    out.append("")
    out.append("The burn runs for a fixed time, so where the machine is oversubscribed it gets less CPU "
               "time (does less work) beside the neighbour; the J per burn CPU-second columns compare "
               "the same work.\n")
    out.append("Per run (others' share: the part of the machine's busy CPU time that was neither the "
               "command, the neighbour's core, nor the measuring tool; it is other engineers' work on "
               "this shared machine, so \"alone\" is not perfectly alone):\n")
    out.append("| # | condition | pt own J | pt machine J | split J | command CPU-s / machine CPU-s (pt run) "
               "| others' share (pt run) | CodeCarbon J (CPU + RAM) | burn CPU-s / CPU-s CodeCarbon saw "
               "| others' share (CC run) |")
    out.append("|---|---|---:|---:|---:|---|---:|---:|---|---:|")
    for p in pairs:
        t, c = p.powertrain, p.codecarbon
        seen = f"{c.seen_cpu_s:.2f}" if c.seen_cpu_s is not None else "?"
        out.append(
            f"| {p.repeat} | {p.condition} | {t.energy_j:.1f} | {t.machine_energy_j:.1f} | {t.split_j:.1f} "
            f"| {t.command_cpu_s:.2f} / {t.machine_cpu_s:.2f} | {others_share(p, 'pt'):.0%} "
            f"| {c.energy_j:.1f} ({c.cpu_j:.1f} + {c.ram_j:.1f}) | {c.burn_cpu_s:.2f} / {seen} "
            f"| {others_share(p, 'cc'):.0%} |")
    out.append("")
    first = pairs[0].powertrain
    out.append(f"powertrain's method label: `{first.method}`; attribution: `{first.attribution}`.")
    for p in (next((p for p in pairs if p.condition == c), None) for c in ("alone", "beside")):
        if p is not None:
            out.append(f"powertrain's channels, run {p.repeat} {p.condition}: {p.powertrain.channels}.")
    out.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
    out.append(f"\nProduced by: `{command}`")
    return "\n".join(out) + "\n"


def others_share(p: Pair, which: str) -> float:
    """Share of the machine's busy CPU time that was other people's work during a run:
    neither the command, nor the measuring tool, nor the neighbour (measured from its
    /proc/PID/stat). powertrain itself counts the neighbour among its "others"."""
    run = p.powertrain if which == "pt" else p.codecarbon
    others = max(0.0, run.others_cpu_s - run.neighbour_cpu_s)
    return others / run.machine_cpu_s if run.machine_cpu_s > 0 else 0.0


def burn_argv(args: argparse.Namespace) -> list[str]:
    return [args.powertrain, "burn", "--seconds", f"{args.seconds:g}", "--threads", str(args.threads)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("powertrain", help="path of the powertrain binary")
    ap.add_argument("repeats", nargs="?", type=int, default=3, help="repeats per condition (default 3)")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each burn (default 8)")
    ap.add_argument("--threads", type=int, default=1, help="threads of the measured burn (default 1)")
    ap.add_argument("--neighbour", choices=["burn", "python"], default="burn",
                    help="the noisy neighbour: another powertrain burn or a Python busy loop (default burn)")
    ap.add_argument("--measure-power-secs", type=float, default=1.0,
                    help="CodeCarbon's sampling interval (default 1)")
    ap.add_argument("--pin", type=int, metavar="CPU",
                    help="confine the measured command (powertrain measure and its burn; the burn under "
                         "CodeCarbon) to this CPU, as a cpuset reservation would; the neighbour stays free")
    ap.add_argument("--quiet-below", type=float, default=0.5,
                    help="with --quiet-wait-s: wait for the machine to keep fewer busy CPUs than this (default 0.5)")
    ap.add_argument("--quiet-wait-s", type=float, default=0.0,
                    help="before each alone and each beside measurement, wait up to this long for a quiet machine (default 0: no wait)")
    ap.add_argument("--quiet-share", type=float, default=0.10,
                    help="also summarise the repeats whose runs all had less than this share of "
                         "others' CPU time (default 0.10)")
    ap.add_argument("--raw", help="also write every run's figures to this JSON file")
    args = ap.parse_args()

    try:
        import codecarbon  # noqa: F401
    except ImportError:
        fail(f"codecarbon is not importable by {sys.executable}; run this with a Python that has it "
             "(python3 -m venv /tmp/ccvenv && /tmp/ccvenv/bin/pip install codecarbon)")
    if args.repeats < 1:
        fail("repeats must be 1 or more")
    if not (0 < args.seconds <= 120):
        fail("--seconds must be in (0, 120]")
    if args.threads < 1:
        fail("--threads must be 1 or more")
    if args.pin is not None and args.pin not in os.sched_getaffinity(0):
        fail(f"--pin {args.pin}: this process may not run on CPU {args.pin}")
    if not (os.path.isfile(args.powertrain) and os.access(args.powertrain, os.X_OK)):
        fail(f"{args.powertrain} is not an executable file")
    args.powertrain = os.path.abspath(args.powertrain)
    for name in ("codecarbon", "codecarbon.core", "codecarbon.external"):
        logging.getLogger(name).setLevel(logging.ERROR)

    import codecarbon as cc
    pt_version = subprocess.run([args.powertrain, "--version"], capture_output=True, text=True).stdout
    pt_version = (pt_version.strip().splitlines() or ["?"])[0]
    versions = {"codecarbon": cc.__version__, "powertrain": pt_version.removeprefix("powertrain ").strip(),
                "python": ".".join(map(str, sys.version_info[:3]))}
    command = shlex.join([sys.executable, *sys.argv])
    burn = burn_argv(args)
    # The neighbour outlives both runs of a pair with room to spare, and no more.
    neighbour_limit_s = 2 * args.seconds + 60

    pairs: list[Pair] = []
    with tempfile.TemporaryDirectory(prefix="attribution_peers.") as workdir:
        for i in range(1, args.repeats + 1):
            # Alternate the order so that drifts in the machine's load do not all fall on one side.
            for condition in (("alone", "beside") if i % 2 else ("beside", "alone")):
                busy = ""
                if args.quiet_wait_s > 0:
                    busy = f" (machine busy before: {wait_until_quiet(args.quiet_below, args.quiet_wait_s):.2f} CPUs)"
                print(f"[{i}/{args.repeats}] {condition}{busy} ...", file=sys.stderr, flush=True)
                tag = f"{i}-{condition}"
                if condition == "beside":
                    with Neighbour(args.neighbour, args.powertrain, neighbour_limit_s) as n:
                        pt = run_powertrain(args.powertrain, burn, workdir, tag, n, args.pin)
                        ccr = run_codecarbon(burn, args.measure_power_secs, n, args.pin)
                else:
                    pt = run_powertrain(args.powertrain, burn, workdir, tag, None, args.pin)
                    ccr = run_codecarbon(burn, args.measure_power_secs, None, args.pin)
                pairs.append(Pair(i, condition, pt, ccr))

    report = render(pairs, command, versions, args)
    print(report, end="")
    if args.raw:
        with open(args.raw, "w", encoding="utf-8") as f:
            json.dump({"command": command, "versions": versions, "runs": [asdict(p) for p in pairs]}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
