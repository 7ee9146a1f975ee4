#!/usr/bin/env python3
"""The run's own energy against a noisy neighbour (docs/measurement.md).

Runs, side by side in one invocation:
  same    the same training work (synthetic images, batch 64, one thread)
          alone and beside a neighbour (a process outside the run that keeps
          another core busy), REPEATS times each: energy per epoch, the run's
          own and the machine's;
  grid    the quick grid study (examples/grid-quick.toml) alone, beside a
          neighbour, and (with --slurm DIR, a running slurm-cluster) through
          oversubscribed Slurm on one node: the recommended setup in each, each
          setup's own energy against the quiet one, and the spread of energy
          per epoch among setups with the same batch size.

Usage: bench/attribution_proof.py POWERTRAIN OUTDIR [--repeats N] [--only same|grid]
                                  [--slurm SLURM_CLUSTER_DIR]
Prints Markdown tables. Every figure on a machine without energy counters is
the estimate, and the tables say so.
"""
import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def neighbour(pt, on):
    """A process outside the run that keeps one core busy."""
    if not on:
        yield
        return
    p = subprocess.Popen([pt, "burn", "--seconds", "3600", "--threads", "1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(1.0)
    try:
        yield
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def run(cmd, env=None):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"attribution_proof: {' '.join(map(str, cmd))} failed ({r.returncode}): {r.stdout[-2000:]}")
    return r.stdout


def epochs(db):
    with sqlite3.connect(db) as c:
        return c.execute("SELECT epoch, energy_j, machine_energy_j, cpu_machine_s, cpu_measured_s, method "
                         "FROM epochs ORDER BY run_id, epoch").fetchall()


def same_work(pt, out, repeats):
    rows = {}
    for cond in ("alone", "beside"):
        own, machine, others, cpu, per_cpu, method = [], [], [], [], [], ""
        for r in range(repeats):
            db = out / f"same-{cond}-{r}.db"
            db.unlink(missing_ok=True)
            with neighbour(pt, cond == "beside"):
                run([pt, "train", "--dataset", "synthetic-images", "--data", "max_samples=2000",
                     "--batch-size", "64", "--lr", "0.01", "--max-epochs", "3", "--patience", "10",
                     "--threads", "1", "--quiet", "--db", str(db)])
            for epoch, e, m, cm, cr, meth in epochs(db):
                if epoch == 1:
                    continue  # the first epoch warms caches and allocators up
                own.append(e)
                machine.append(m)
                others.append(max(0.0, (cm - cr) / cm) if cm else 0.0)
                cpu.append(cr)
                per_cpu.append(e / cr if cr else float("nan"))
                method = meth
        rows[cond] = [statistics.median(v) for v in (own, machine, others, cpu, per_cpu)] + [method, len(own)]
    a, b = rows["alone"], rows["beside"]
    print("### The same work alone and beside a noisy neighbour\n")
    print(f"`{sys.argv[0]} {pt} {out} --only same --repeats {repeats}`: synthetic images, batch 64, one thread, "
          "epochs 2-3 of 3, medians over the runs; others' share is other processes' part of the machine's busy "
          "CPU time; the run's CPU-s is the CPU time the same work took.\n")
    print("| condition | epochs | own J/epoch | machine J/epoch | others' CPU share | run's CPU-s/epoch | "
          "own J per run CPU-s | method |")
    print("|---|---|---|---|---|---|---|---|")
    for cond in ("alone", "beside"):
        own, machine, others, cpu, per_cpu, method, n = rows[cond]
        print(f"| {cond} | {n} | {own:.2f} | {machine:.2f} | {others:.0%} | {cpu:.2f} | {per_cpu:.2f} | {method} |")
    print(f"| beside / alone | | **{b[0] / a[0]:.3f}** | {b[1] / a[1]:.3f} | | {b[3] / a[3]:.3f} | "
          f"{b[4] / a[4]:.3f} | |\n")
    return b[0] / a[0]


def grid_results(pt, db):
    data = json.loads(run([pt, "results", str(db), "--study", "grid-quick", "--json", "-"]))
    return data


def runs_of(db):
    with sqlite3.connect(db) as c:
        return c.execute(
            "SELECT r.batch_size, r.learning_rate, r.energy_j, r.machine_energy_j, r.epochs, r.energy_to_target_j, "
            "r.cpu_machine_s, r.cpu_measured_s FROM trials t JOIN runs r ON r.id = t.run_id "
            "ORDER BY r.batch_size, r.learning_rate").fetchall()


def recommendation(db):
    """The setup `results` recommends (least energy to the target among setups that reach it), and the setups
    within 5% of it: setups of one batch size that reach the target in the same epoch did the same work, so
    which of them comes first is a tie that noise decides."""
    rows = [r for r in runs_of(db) if r[5] is not None]
    if not rows:
        return None
    best = min(rows, key=lambda r: r[5])
    ties = sorted(f"lr={r[1]:g}" for r in rows if r is not best and r[0] == best[0] and r[5] <= 1.05 * best[5])
    return f"bs={best[0]} lr={best[1]:g}" + (f" (tied within 5%: bs={best[0]} {', '.join(ties)})" if ties else "")


def epoch_energy(db):
    """Per setup, the median energy of its epochs after the first (the same work per epoch at one batch size)."""
    with sqlite3.connect(db) as c:
        out = {}
        for bs, lr, e in c.execute(
                "SELECT r.batch_size, r.learning_rate, e.energy_j FROM trials t JOIN runs r ON r.id = t.run_id "
                "JOIN epochs e ON e.run_id = r.id WHERE e.epoch > 1"):
            out.setdefault((bs, lr), []).append(e)
        return {k: statistics.median(v) for k, v in out.items()}


def grid(pt, out, slurm_dir, reuse=False):
    conds = ["alone", "beside"] + (["slurm"] if slurm_dir else [])
    spec = ROOT / "examples/grid-quick.toml"
    dbs = {}
    for cond in conds:
        db = out / f"grid-{cond}.db"
        if reuse:
            dbs[cond] = db
            continue
        for p in out.glob(f"grid-{cond}.db*"):
            if p.is_file():
                p.unlink()
        if cond == "slurm":
            env = dict(os.environ)
            env.update(dict(line.split("=", 1) for line in
                            run([str(ROOT / "tests/support/slurm/slurm-cluster"), "env", slurm_dir]).split()))
            run([pt, "sweep", str(spec), "--db", str(db), "--slurm", "--wait"], env=env)
        else:
            with neighbour(pt, cond == "beside"):
                run([pt, "sweep", str(spec), "--db", str(db)])
        dbs[cond] = db
    quiet = {(r[0], r[1]): r for r in runs_of(dbs["alone"])}
    print("### The quick grid alone, beside a neighbour" + (" and through oversubscribed Slurm" if slurm_dir else ""))
    print(f"\n`{sys.argv[0]} {pt} {out} --only grid" + (f" --slurm {slurm_dir}" if slurm_dir else "") + "`\n")
    print("| condition | recommended setup | own energy vs alone: median, worst | own J per run CPU-s vs alone: "
          "median, worst | machine vs alone: median | "
          "same batch size, J per epoch (epochs 2+) max/min over learning rates (worst batch size) | others' CPU share |")
    print("|---|---|---|---|---|---|---|")
    summary = {}
    for cond in conds:
        rows = runs_of(dbs[cond])
        dev, mdev, others, pdev = [], [], [], []
        by_batch = {}
        for (bs, _), e in epoch_energy(dbs[cond]).items():
            by_batch.setdefault(bs, []).append(e)
        for r in rows:
            q = quiet.get((r[0], r[1]))
            if q and q[2]:
                dev.append(r[2] / q[2] - 1.0)
                mdev.append(r[3] / q[3] - 1.0)
                if r[7] and q[7]:
                    pdev.append((r[2] / r[7]) / (q[2] / q[7]) - 1.0)
            if r[6]:
                others.append(max(0.0, (r[6] - r[7]) / r[6]))
        spread = {b: max(v) / min(v) for b, v in by_batch.items() if len(v) > 1 and min(v) > 0}
        worst_b = max(spread, key=spread.get) if spread else None
        worst = max(dev, key=abs) if dev else float("nan")
        summary[cond] = (recommendation(dbs[cond]), worst, spread.get(worst_b, float("nan")))
        pworst = max(pdev, key=abs) if pdev else float("nan")
        print(f"| {cond} | {summary[cond][0]} | {statistics.median(dev):+.1%}, {worst:+.1%} | "
              f"{statistics.median(pdev):+.1%}, {pworst:+.1%} | "
              f"{statistics.median(mdev):+.1%} | {spread.get(worst_b, float('nan')):.3f} (batch {worst_b}) | "
              f"{statistics.median(others):.0%} |")
    print()
    return summary


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("powertrain")
    ap.add_argument("out")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", choices=["same", "grid"])
    ap.add_argument("--slurm", help="a running tests/support/slurm/slurm-cluster folder")
    ap.add_argument("--reuse", action="store_true", help="summarize the databases already in OUTDIR")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    pt = str(Path(a.powertrain).resolve())
    if a.only in (None, "same"):
        same_work(pt, out, a.repeats)
    if a.only in (None, "grid"):
        grid(pt, out, a.slurm, a.reuse)


if __name__ == "__main__":
    main()
