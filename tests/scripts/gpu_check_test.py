#!/usr/bin/env python3
"""Runs scripts/gpu-check on the CPU against a build folder and checks what it
wrote, so that the GPU check (which CI cannot run on a GPU) cannot rot.

    gpu_check_test.py dry-run   SCRIPT BUILD_DIR        every step, tiny, on the CPU
    gpu_check_test.py failures  SCRIPT BUILD_DIR        a failing and a hanging step are recorded, the rest run
    gpu_check_test.py deps      SCRIPT BUILD_DIR        --deps unpacks .deb files into a prefix of its own
    gpu_check_test.py fake-nvml SCRIPT BUILD_DIR LIB    the NVML steps against the fake NVML library
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(script, build_dir, out, *args, env=None):
    cmd = [script, "--dry-run", "--build-dir", build_dir, "--out", out, *args]
    t0 = time.monotonic()
    p = subprocess.run(cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    print(p.stdout[-6000:])
    print(p.stderr[-3000:], file=sys.stderr)
    print(f"gpu_check_test: {' '.join(cmd)}: exit {p.returncode} in {time.monotonic() - t0:.0f} s")
    doc = json.loads((Path(out) / "gpu-check.json").read_text())
    md = (Path(out) / "gpu-check.md").read_text()
    return p.returncode, doc, md


def steps(doc):
    return {s["step"]: s for s in doc["steps"]}


def check(cond, what):
    if not cond:
        sys.exit(f"gpu_check_test: FAILED: {what}")


def dry_run(script, build_dir, out):
    rc, doc, md = run(script, build_dir, out)
    st = steps(doc)
    everything = ["env", "build", "version", "measure", "windows", "queued", "attribution", "grid-quick", "example",
                  "race", "batch-sweep", "grid-full"]
    check(list(st) == everything, f"steps run: {list(st)}")
    allowed_skips = {"windows": "no NVIDIA driver", "race": "bench_train is not built"}
    for name, s in st.items():
        if s["status"] == "skipped":
            check(name in allowed_skips and allowed_skips[name] in s["note"], f"{name} skipped: {s['note']}")
        else:
            check(s["status"] == "passed", f"{name}: {s['status']}: {s['note']}")
    check(rc == 0, f"exit {rc}")
    f = doc["figures"]
    check(f["measure"]["energy_j"] > 0 and f["measure"]["duration_s"] >= 1.0, f"measure: {f['measure']}")
    for study in ("grid-quick", "batch-sweep", "grid-full"):
        trials = f[study]["trials"]
        check(len(trials) == 2 and all(t["status"] in ("converged", "max_epochs") for t in trials),
              f"{study}: {[(t.get('batch_size'), t.get('status')) for t in trials]}")
        check(all(t["epochs_stored"] == 1 and t["epochs_j"] > 0 for t in trials), f"{study}: epochs {trials}")
        check(sorted(int(b) for b in f[study]["per_batch"]) == [16, 64], f"{study}: {f[study]['per_batch']}")
    check(f["grid-quick"]["spec"]["training"]["device"] == "cpu", "the quick grid's device is overridden")
    check(f["example"]["run"]["status"] in ("converged", "max_epochs") and f["example"]["run"]["energy_j"] > 0,
          f"example: {f['example']['run']}")
    if st["race"]["status"] == "passed":
        check("| 4 |" in f["race"]["output"], "race: a row for batch 4")
    for title in ("## Device and software", "## Build", "## powertrain measure against NVML's energy counter",
                  "## Quick grid on the GPU", "## The example PyTorch script under powertrain train",
                  "| grid-full | passed |"):
        check(title in md, f"report lacks {title!r}")
    check("dry run on the CPU" in md.splitlines()[0], "the report says it is a dry run")


def failures(script, build_dir, out):
    rc, doc, md = run(script, build_dir, out, "--only", "version,measure,queued", "--inject", "version=fail",
                      "--inject", "measure=hang", "--timebox", "measure=3")
    st = steps(doc)
    check(rc == 1, f"exit {rc}, expected 1")
    check(list(st) == ["env", "build", "version", "measure", "queued"], f"steps: {list(st)}")
    check(st["version"]["status"] == "failed" and "injected failure" in st["version"]["note"], st["version"])
    check(st["measure"]["status"] == "failed" and "timed out" in st["measure"]["note"], st["measure"])
    check(st["measure"]["seconds"] < 20, f"the hang ran past its time box: {st['measure']}")
    check(st["queued"]["status"] == "passed", f"the step after the failures: {st['queued']}")
    check("| version | failed |" in md and "| measure | failed |" in md, "the report's step table")


def deps(script, build_dir, out):
    """--deps unpacks .deb files into a prefix of its own and points pkg-config there."""
    root = Path(out) / "pkg"
    pc = root / "usr" / "lib" / "x86_64-linux-gnu" / "pkgconfig" / "demo.pc"
    pc.parent.mkdir(parents=True)
    pc.write_text("prefix=/usr\nexec_prefix=/usr\nlibdir=${exec_prefix}/lib/x86_64-linux-gnu\n"
                  "includedir=/usr/include\nName: demo\nVersion: 1\nLibs: -L${libdir} -ldemo\n")
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN" / "control").write_text("Package: libdemo-dev\nVersion: 1\nArchitecture: all\n"
                                             "Maintainer: powertrain tests <tests@example.org>\nDescription: demo\n")
    debs = Path(out) / "debs"
    debs.mkdir()
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(debs / "libdemo-dev_1_all.deb")],
                   check=True, capture_output=True)
    rc, doc, md = run(script, build_dir, str(Path(out) / "report"), "--only", "version", "--deps", str(debs))
    check(rc == 0, f"exit {rc}")
    build = doc["figures"]["build"]
    prefix = build["deps_env"]["CMAKE_PREFIX_PATH"].split(os.pathsep)[0]
    check(prefix.endswith("/usr") and prefix != "/usr", f"CMAKE_PREFIX_PATH {prefix}")
    check(build["deps_env"]["PKG_CONFIG_PATH"].startswith(prefix + "/lib/x86_64-linux-gnu/pkgconfig"),
          f"PKG_CONFIG_PATH {build['deps_env']['PKG_CONFIG_PATH']}")
    text = build["pc_files"]["demo.pc"]
    for line in (f"prefix={prefix}", f"exec_prefix={prefix}", f"includedir={prefix}/include",
                 "libdir=${exec_prefix}/lib/x86_64-linux-gnu"):
        check(line in text.splitlines(), f"demo.pc lacks {line!r}: {text}")
    check(doc["environment"]["deps"] == ["libdemo-dev_1_all.deb"], doc["environment"].get("deps"))


def fake_nvml(script, build_dir, out, library):
    # One GPU that draws 100 W and 400 W in turns of a second for two minutes,
    # with a counter that refreshes every 100 ms (the integral of that power),
    # a one-second average as its power reading, and an instant power field.
    watts = ",".join("100" if k % 2 == 0 else "400" for k in range(120))
    fake = Path(out) / "fake-nvml.txt"
    Path(out).mkdir(parents=True, exist_ok=True)
    fake.write_text(f"gpu 0 name=NVIDIA_H100_fake watts={watts} step_ms=1000 refresh_ms=100 instant=1 "
                    f"limit_mw=700000\n")
    rc, doc, md = run(script, build_dir, out, "--only", "measure,windows,queued,attribution",
                      env={"POWERTRAIN_NVML_LIBRARY": library, "FAKE_NVML_SCRIPT": str(fake)})
    st = steps(doc)
    check(rc == 0, f"exit {rc}")
    check(all(s["status"] == "passed" for s in st.values()), f"steps: {st}")
    check(doc["environment"]["gpu_names"] == ["NVIDIA H100 fake"], doc["environment"].get("gpu_names"))
    g = doc["figures"]["measure"]["gpus"][0]
    check(g["counter_j"] and g["counter_j"] > 0 and g["powertrain_j"] and g["powertrain_j"] > 0, f"measure: {g}")
    w = doc["figures"]["windows"]
    check(w["instant_power_given"] is True, "instant power is given by the fake")
    for kind in ("steady", "bursty"):
        load = w["loads"][kind]
        check(load["counter_j"] and load["counter_j"] > 0, f"{kind}: counter {load['counter_j']}")
        series = load["windows"]["0.3"]["series"]
        inst, avg = series["instant power, every sample"], series["power (averaged), every sample"]
        # Instant power integrated follows the counter up to the counter's
        # 100 ms steps at the ends (at most 40 J of about 550 J here) ...
        check(abs(inst["total_pct"]) < 20, f"{kind}: instant power against the counter: {inst}")
        # ... while the one-second average lags the turns of the power by half a
        # second, so window by window it is much further off.
        check(avg["median_pct"] > inst["median_pct"] + 10,
              f"{kind}: averaged power should be further from the counter than instant power: {series}")
        check(0.05 <= load["update_period_s"]["counter"] <= 0.2, f"{kind}: counter period {load['update_period_s']}")
    q = doc["figures"]["queued"]
    check(q["C_synchronized"]["counter_j"] is not None, f"queued: {q}")
    check("| nvml:gpu0 |" in md, "attribution lists the GPU channel")


def main():
    mode, script, build_dir = sys.argv[1:4]
    with tempfile.TemporaryDirectory(prefix="gpu-check-test-") as out:
        if mode == "dry-run":
            dry_run(script, build_dir, out)
        elif mode == "failures":
            failures(script, build_dir, out)
        elif mode == "deps":
            deps(script, build_dir, out)
        elif mode == "fake-nvml":
            fake_nvml(script, build_dir, out, sys.argv[4])
        else:
            sys.exit(f"unknown mode {mode}")
    print(f"gpu_check_test: {mode} passed")


if __name__ == "__main__":
    main()
