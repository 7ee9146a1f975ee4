#!/usr/bin/env python3
"""How well the forecasts inside studies did (docs/prediction.md, "Measured accuracy").

    python3 bench/forecast_accuracy.py --powertrain build/src/cli/powertrain ex.db fm.db

For each database: a copy (the original is only read) with its stored
forecasts cleared, so that `powertrain results` recomputes every one as the run
session makes it (the study's other finished runs as peers, a backtest that
leaves the run out); then, per study and pooled, from the "predictions" table:
the median error after 25% and 50% of each run's epochs, CarbonTracker's linear
rule's on the same epochs, and how many outcomes the 80% interval held.

A copy at an older schema is first brought to the current one with the store's
own migration SQL (src/store/schema.cpp), as opening it for writing would.
"""
import argparse
import json
import pathlib
import re
import sqlite3
import statistics
import subprocess
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent


def migrations():
    """The store's migrations by version: {version: sql}."""
    text = (ROOT / "src/store/schema.cpp").read_text()
    return {int(v): sql for v, sql in re.findall(r'constexpr std::string_view kV(\d+) = R"sql\((.*?)\)sql";', text, re.S)}


def upgrade(db: sqlite3.Connection, target: int):
    version = db.execute("PRAGMA user_version").fetchone()[0]
    sqls = migrations()
    for v in range(version + 1, target + 1):
        if "writable_schema" in sqls[v]:
            raise SystemExit(f"schema version {version}: open the database once with powertrain to upgrade it")
        db.executescript("BEGIN;" + sqls[v] + f"; PRAGMA user_version = {v}; COMMIT;")


def copy_cleared(src: pathlib.Path, dst: pathlib.Path):
    with sqlite3.connect(f"file:{src}?mode=ro", uri=True) as s, sqlite3.connect(dst) as d:
        s.backup(d)
    d = sqlite3.connect(dst, isolation_level=None)
    target = max(migrations())
    if d.execute("PRAGMA user_version").fetchone()[0] < target:
        upgrade(d, target)
    d.execute("UPDATE epochs SET forecast_method = NULL")
    d.close()


def linear_errors(db: pathlib.Path, study: str, rows):
    """CarbonTracker's rule on the epochs each row's forecast saw: mean epoch energy x max_epochs."""
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    out = {"25": [], "50": []}
    for r in rows:
        run_id, config = c.execute(
            "SELECT r.id, t.config FROM trials t JOIN studies s ON s.id = t.study_id JOIN runs r ON r.id = t.run_id "
            "WHERE s.name = ? AND r.batch_size = ? AND abs(r.learning_rate - ?) < 1e-12 AND t.phase = ? AND t.task = ? "
            "AND r.seed = ? AND t.status IN ('converged', 'max_epochs')",
            (study, r["batch_size"], r["learning_rate"], r["phase"], r["task"], r["seed"])).fetchone()
        energies = [e for (e,) in c.execute("SELECT energy_j FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,))]
        max_epochs = json.loads(config)["max_epochs"]
        for share in ("25", "50"):
            k = r[f"seen_{share}"]
            out[share].append(100 * abs(sum(energies[:k]) / k * max_epochs - r["energy_j"]) / r["energy_j"])
    return out


def line(name, n, err, lin, held):
    m = statistics.median
    return (f"| {name} ({n}) | {m(err['25']):.1f}% / {m(err['50']):.1f}% | {m(lin['25']):.1f}% / {m(lin['50']):.1f}% | "
            f"{held['25']}/{n} ({100 * held['25'] / n:.0f}%) / {held['50']}/{n} ({100 * held['50'] / n:.0f}%) |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--powertrain", default=str(ROOT / "build/src/cli/powertrain"))
    ap.add_argument("db", nargs="+", type=pathlib.Path)
    args = ap.parse_args()
    print("| study (runs) | error 25% / 50% | linear rule 25% / 50% | 80% interval held 25% / 50% | method after 50% |")
    print("|---|---|---|---|---|")
    pooled = {"err": {"25": [], "50": []}, "lin": {"25": [], "50": []}, "held": {"25": 0, "50": 0}, "n": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for i, src in enumerate(args.db):
            copy = pathlib.Path(tmp) / f"copy{i}.db"
            copy_cleared(src, copy)
            out = pathlib.Path(tmp) / f"copy{i}.json"
            subprocess.run([args.powertrain, "results", str(copy), "--json", str(out)], check=True,
                           stdout=subprocess.DEVNULL)
            for study in json.loads(out.read_text())["studies"]:
                table = study["tables"].get("predictions")
                if not table:
                    continue
                rows = table["rows"]
                err = {s: [r[f"error_{s}_pct"] for r in rows] for s in ("25", "50")}
                held = {s: sum(r[f"predicted_{s}_low_j"] <= r["energy_j"] <= r[f"predicted_{s}_high_j"] for r in rows)
                        for s in ("25", "50")}
                lin = linear_errors(copy, study["name"], rows)
                methods = sorted({r["method_50"] for r in rows})
                print(line(study["name"], len(rows), err, lin, held) + " " + "; ".join(methods) + " |")
                for s in ("25", "50"):
                    pooled["err"][s] += err[s]
                    pooled["lin"][s] += lin[s]
                    pooled["held"][s] += held[s]
                pooled["n"] += len(rows)
    print(line("all", pooled["n"], pooled["err"], pooled["lin"], pooled["held"]) + " |")


if __name__ == "__main__":
    main()
