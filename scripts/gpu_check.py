#!/usr/bin/env python3
"""The GPU check of issue 29: everything powertrain should show on a real GPU, in
one prepared run that fits a short loan of a GPU machine (about 8 minutes).

    scripts/gpu-check --prepare-carry .gpu-carry        # here: what the GPU machine lacks
    scripts/gpu-check [--out DIR] [--build-dir DIR]     # there, with .gpu-carry carried
    scripts/gpu-check --dry-run --build-dir build      # the same steps on the CPU, tiny (CI)

Steps, in order, each time-boxed; a step that fails is recorded with its error
and the next one runs:

  env          the device (NVML: name, driver, CUDA driver, energy counter,
               instant power field), the Python's torch, the tools
  build        powertrain against that Python's PyTorch with the documented
               command (POWERTRAIN_PYTHON=... scripts/build; incremental in a
               build folder that has one), with the libraries of --deps (.deb
               files, default .gpu-carry/deps) unpacked into it; --no-build
               takes a carried build folder as it is
  version      `powertrain --version`, `powertrain-train --version` and `powertrain devices --json`
  measure      `powertrain measure` of a steady GPU load, with NVML's energy
               counter read directly around it: joules and percent apart
  windows      power samples integrated against the counter over 0.1 s, 1 s
               and 10 s windows, steady and bursty load; is instant power given?
  queued       a window that ends before queued GPU work finishes, without and
               with a synchronization at the boundary
  attribution  which GPUs `powertrain measure --json` charges: a command that
               uses the GPU, and one that does not
  grid-quick   examples/grid-quick.toml with device = "cuda"
  example      examples/fashion-mnist-pytorch/train.py under `powertrain train --`
  race         bench_train: the engine against the tuned Python form, batch 1 to 1024
  batch-sweep  full Fashion-MNIST, one learning rate, every batch size, 2 epochs:
               energy per epoch by batch size
  grid-full    examples/grid-full.toml, as far as the remaining time allows

Every figure goes into DIR/gpu-check.md (the form of docs/benchmarks.md) with
the device, driver, CUDA and torch versions; DIR/gpu-check.json holds the same
figures, DIR/gpu-check.log every command's output, DIR/gpu-check.db the runs.
DIR is --out, else $OUT, else gpu-check-out. Nothing here changes GPU clocks,
power limits or modes: NVML is only read.

This file is also the load programs the check runs (subcommands `describe`,
`load`, `queued`); only those import torch, so the check itself never holds a
CUDA context (it would show up in the GPU's process list). Standard library
and torch only.
"""
from __future__ import annotations

import argparse
import bisect
import ctypes
import datetime
import glob
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve()

# NVML field ids (nvml.h): power averaged by the driver, and instantaneous power, in mW.
FIELD_POWER_AVERAGE = 185
FIELD_POWER_INSTANT = 186
NVML_RETURN_NAMES = {0: "SUCCESS", 1: "UNINITIALIZED", 2: "INVALID_ARGUMENT", 3: "NOT_SUPPORTED",
                     4: "NO_PERMISSION", 6: "NOT_FOUND", 7: "INSUFFICIENT_SIZE", 9: "DRIVER_NOT_LOADED",
                     10: "TIMEOUT", 12: "LIBRARY_NOT_FOUND", 13: "FUNCTION_NOT_FOUND", 15: "GPU_IS_LOST",
                     18: "LIB_RM_VERSION_MISMATCH", 21: "NO_DATA", 999: "UNKNOWN"}


# --- NVML, read only ------------------------------------------------------------------

class NvmlAbsent(Exception):
    """No NVIDIA driver (or no usable NVML) on this machine."""


class NvmlError(Exception):
    def __init__(self, what, code):
        super().__init__(f"{what}: {NVML_RETURN_NAMES.get(code, code)}")
        self.code = code


class _FieldValue(ctypes.Structure):
    """nvmlFieldValue_t (40 bytes)."""
    _fields_ = [("field_id", ctypes.c_uint), ("scope_id", ctypes.c_uint), ("timestamp", ctypes.c_longlong),
                ("latency_us", ctypes.c_longlong), ("value_type", ctypes.c_int), ("nvml_return", ctypes.c_int),
                ("value", ctypes.c_ulonglong)]


def _field_number(value_type, raw):
    """The union's value by nvmlValueType_t (DOUBLE=0, UINT=1, ULONG=2, ULL=3, SLL=4, SINT=5, USHORT=6)."""
    if value_type == 0:
        return ctypes.c_double.from_buffer_copy(ctypes.c_ulonglong(raw)).value
    if value_type in (1, 5):
        v = raw & 0xFFFFFFFF
        return v - (1 << 32) if value_type == 5 and v >= 1 << 31 else v
    if value_type == 6:
        return raw & 0xFFFF
    if value_type == 4:
        return raw - (1 << 64) if raw >= 1 << 63 else raw
    return raw


class Nvml:
    """The few NVML reads the check needs: nvidia-ml-py (pynvml) where it is
    importable and no library is forced, else the driver's libnvidia-ml.so.1
    through ctypes (or the library named by --nvml-library /
    $POWERTRAIN_NVML_LIBRARY, as powertrain itself takes it). Reads only."""

    def __init__(self, library=None):
        self.backend = None
        self.notes = []
        if not library:
            try:
                import pynvml  # nvidia-ml-py
                pynvml.nvmlInit()
                self._py = pynvml
                self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
                self.backend = "nvidia-ml-py"
                return
            except ImportError:
                pass
            except Exception as e:  # noqa: BLE001 - any failure of the binding: try the library directly
                self.notes.append(f"nvidia-ml-py failed ({e}); read libnvidia-ml.so.1 directly")
        names = [library] if library else ["libnvidia-ml.so.1", "libnvidia-ml.so"]
        errors = []
        for name in names:
            try:
                self._lib = ctypes.CDLL(name)
                break
            except OSError as e:
                errors.append(str(e))
        else:
            if all("cannot open shared object file" in e for e in errors):
                raise NvmlAbsent(f"no NVIDIA driver ({names[0]} not found)")
            raise NvmlAbsent("no NVIDIA driver (" + "; ".join(errors) + ")")
        init = getattr(self._lib, "nvmlInit_v2", None) or self._lib.nvmlInit
        rc = init()
        if rc != 0:
            raise NvmlAbsent(f"no NVIDIA driver (nvmlInit: {NVML_RETURN_NAMES.get(rc, rc)})")
        count = ctypes.c_uint()
        self._check("nvmlDeviceGetCount", self._fn("nvmlDeviceGetCount_v2", "nvmlDeviceGetCount")(ctypes.byref(count)))
        self._handles = []
        for i in range(count.value):
            h = ctypes.c_void_p()
            self._check("nvmlDeviceGetHandleByIndex",
                        self._fn("nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex")(i, ctypes.byref(h)))
            self._handles.append(h)
        self.backend = f"ctypes on {name}"

    def _pycall(self, name, *args):
        """A pynvml call, its NVMLError as NvmlError with the return code."""
        try:
            return getattr(self._py, name)(*args)
        except self._py.NVMLError as e:
            raise NvmlError(name, getattr(e, "value", 999)) from None

    # ctypes helpers
    def _fn(self, *names):
        for n in names:
            f = getattr(self._lib, n, None)
            if f is not None:
                return f
        raise NvmlError(names[0], 13)

    @staticmethod
    def _check(what, rc):
        if rc != 0:
            raise NvmlError(what, rc)

    def count(self):
        return len(self._handles)

    def _string(self, fn_name, i):
        if self.backend == "nvidia-ml-py":
            v = self._pycall(fn_name, self._handles[i])
            return v.decode() if isinstance(v, bytes) else str(v)
        buf = ctypes.create_string_buffer(96)
        self._check(fn_name, self._fn(fn_name)(self._handles[i], buf, 96))
        return buf.value.decode(errors="replace")

    def name(self, i):
        return self._string("nvmlDeviceGetName", i)

    def uuid(self, i):
        return self._string("nvmlDeviceGetUUID", i)

    def driver_version(self):
        if self.backend == "nvidia-ml-py":
            v = self._pycall("nvmlSystemGetDriverVersion")
            return v.decode() if isinstance(v, bytes) else str(v)
        buf = ctypes.create_string_buffer(96)
        self._check("nvmlSystemGetDriverVersion", self._fn("nvmlSystemGetDriverVersion")(buf, 96))
        return buf.value.decode()

    def cuda_driver_version(self):
        if self.backend == "nvidia-ml-py":
            v = self._pycall("nvmlSystemGetCudaDriverVersion")
        else:
            out = ctypes.c_int()
            self._check("nvmlSystemGetCudaDriverVersion",
                        self._fn("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion")(
                            ctypes.byref(out)))
            v = out.value
        return f"{v // 1000}.{(v % 1000) // 10}"

    def energy_mj(self, i):
        """nvmlDeviceGetTotalEnergyConsumption: mJ since the driver loaded."""
        if self.backend == "nvidia-ml-py":
            return int(self._pycall("nvmlDeviceGetTotalEnergyConsumption", self._handles[i]))
        v = ctypes.c_ulonglong()
        self._check("nvmlDeviceGetTotalEnergyConsumption",
                    self._fn("nvmlDeviceGetTotalEnergyConsumption")(self._handles[i], ctypes.byref(v)))
        return v.value

    def _uint(self, fn_name, i):
        if self.backend == "nvidia-ml-py":
            return int(self._pycall(fn_name, self._handles[i]))
        v = ctypes.c_uint()
        self._check(fn_name, self._fn(fn_name)(self._handles[i], ctypes.byref(v)))
        return v.value

    def power_mw(self, i):
        """nvmlDeviceGetPowerUsage (a one-second average on Ampere and newer)."""
        return self._uint("nvmlDeviceGetPowerUsage", i)

    def power_limit_mw(self, i):
        return self._uint("nvmlDeviceGetEnforcedPowerLimit", i)

    def fields(self, i, ids):
        """{field id: (return code, value)} from nvmlDeviceGetFieldValues."""
        if self.backend == "nvidia-ml-py":
            values = self._pycall("nvmlDeviceGetFieldValues", self._handles[i], list(ids))
            out = {}
            for fid, v in zip(ids, values):
                rc = int(v.nvmlReturn)
                num = None
                if rc == 0:
                    u = v.value
                    num = {0: u.dVal, 1: u.uiVal, 2: u.ulVal, 3: u.ullVal, 4: u.sllVal, 5: u.siVal,
                           6: getattr(u, "usVal", u.uiVal)}.get(int(v.valueType), u.ullVal)
                out[fid] = (rc, num)
            return out
        arr = (_FieldValue * len(ids))()
        for k, fid in enumerate(ids):
            arr[k].field_id = fid
        self._check("nvmlDeviceGetFieldValues", self._fn("nvmlDeviceGetFieldValues")(self._handles[i], len(ids), arr))
        return {fid: (arr[k].nvml_return, _field_number(arr[k].value_type, arr[k].value) if arr[k].nvml_return == 0
                      else None) for k, fid in enumerate(ids)}

    def try_energy_mj(self, i):
        try:
            return self.energy_mj(i)
        except NvmlError:
            return None


def open_nvml(library):
    """(Nvml or None, why not)."""
    try:
        return Nvml(library), ""
    except NvmlAbsent as e:
        return None, str(e)
    except (NvmlError, OSError, AttributeError) as e:
        return None, f"NVML unusable: {e}"


# --- the programs the check runs: describe, load, queued --------------------------------

def _torch_device(name):
    import torch
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"gpu_check: --device {name}, but this torch sees no GPU")
    return torch, dev


def _sync(torch, dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _operands(torch, dev, size):
    """Two square matrices: bf16 on a GPU (the tensor cores' fast path), float32 on a CPU."""
    n = size or (8192 if dev.type == "cuda" else 256)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    torch.manual_seed(0)  # drawn on the device: 16384^2 numbers take seconds on a CPU
    a = torch.randn(n, n, device=dev, dtype=dtype) / math.sqrt(n)
    b = torch.randn(n, n, device=dev, dtype=dtype) / math.sqrt(n)
    return a, b


def cmd_describe(a):
    out = {"python": sys.executable, "python_version": platform.python_version()}
    try:
        import torch
    except ImportError as e:
        out["error"] = f"cannot import torch: {e}"
        print(json.dumps(out))
        return
    out.update(torch=torch.__version__, torch_cuda=torch.version.cuda, cuda_available=torch.cuda.is_available())
    try:
        out["cudnn"] = torch.backends.cudnn.version()
    except Exception:  # noqa: BLE001
        out["cudnn"] = None
    if a.device.startswith("cuda") and torch.cuda.is_available():
        out["gpus"] = [{"name": torch.cuda.get_device_name(i),
                        "capability": ".".join(map(str, torch.cuda.get_device_capability(i))),
                        "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
                       for i in range(torch.cuda.device_count())]
    print(json.dumps(out))


# The bursty load: busy and idle spells in seconds, repeated (short and long,
# so that 0.1 s windows see both edges and idle gaps inside them).
BURSTS = [(0.05, 0.10), (0.20, 0.05), (0.02, 0.30), (0.50, 0.20), (0.10, 0.05), (0.30, 0.40)]


def cmd_load(a):
    """Matrix products for --seconds: steady (back to back, synchronized every
    ~20 ms so the queue never runs ahead) or bursty (BURSTS). Prints JSON lines
    with CLOCK_MONOTONIC times when the load starts and ends."""
    torch, dev = _torch_device(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
    x, y = _operands(torch, dev, a.size)
    with torch.no_grad():
        z = x @ y
        _sync(torch, dev)
        t = time.perf_counter()
        z = x @ y
        _sync(torch, dev)
        per_op = max(time.perf_counter() - t, 1e-6)
        chunk = max(1, int(0.02 / per_op))
        ops = 0
        start = time.monotonic()
        print(json.dumps({"event": "start", "t": start, "op_s": per_op}), flush=True)
        end = start + a.seconds
        if a.kind == "steady":
            while time.monotonic() < end:
                for _ in range(chunk):
                    z = x @ y
                _sync(torch, dev)
                ops += chunk
        else:
            k = 0
            while time.monotonic() < end:
                busy, idle = BURSTS[k % len(BURSTS)]
                k += 1
                stop = min(end, time.monotonic() + busy)
                while time.monotonic() < stop:
                    z = x @ y
                    _sync(torch, dev)
                    ops += 1
                time.sleep(max(0.0, min(idle, end - time.monotonic())))
        stop_t = time.monotonic()
    print(json.dumps({"event": "end", "t": stop_t, "ops": ops, "seconds": stop_t - start,
                      "checksum": float(z.float().abs().mean())}), flush=True)


def cmd_queued(a):
    """Windows around queued GPU work: A ends right after the work is queued
    (no synchronization), B then waits for it; C synchronizes before it ends.
    Read with powertrain's Meter where the native module is built, and with
    NVML's counter directly. Prints one JSON object."""
    torch, dev = _torch_device(a.device)
    nv, nv_why = open_nvml(a.nvml_library) if dev.type == "cuda" or a.nvml_library else (None, "CPU: no GPU")
    gpu = (dev.index or 0) if dev.type == "cuda" else 0
    out = {"device": str(dev), "nvml": nv.backend if nv else nv_why}
    meter = None
    try:
        import powertrain
        meter = powertrain.Meter(interval_ms=100)
        out["meter"] = "powertrain.Meter"
    except Exception as e:  # noqa: BLE001 - not built here: the raw counter still answers
        out["meter"] = f"unavailable: {str(e).splitlines()[0][:200]}"
    x, y = _operands(torch, dev, a.size or (16384 if dev.type == "cuda" else 128))
    with torch.no_grad():
        for _ in range(3):
            z = x @ y
        _sync(torch, dev)
        t = time.perf_counter()
        for _ in range(5):
            z = x @ y
        _sync(torch, dev)
        per_op = (time.perf_counter() - t) / 5
        # Below the CUDA launch queue's depth (about a thousand kernels), so
        # queueing returns at once instead of waiting for room.
        ops = max(1, min(900, int(a.work_s / max(per_op, 1e-6))))
        out.update(op_s=per_op, ops=ops, work_s=per_op * ops)

        def mark():
            return time.monotonic(), (nv.try_energy_mj(gpu) if nv else None)

        def window(name, body):
            t0, c0 = mark()
            if meter:
                meter.begin(name)
            body()
            t1, c1 = mark()
            r = meter.end(name) if meter else None
            w = {"wall_s": t1 - t0, "counter_j": (c1 - c0) / 1000 if c0 is not None and c1 is not None else None}
            if r is not None:
                gpu_ch = [c for c in r.channels if c.get("component") == "gpu"]
                w.update(meter_j=r.energy_j, meter_s=r.duration_s, meter_method=r.method,
                         meter_gpu_j=sum(c["energy_j"] for c in gpu_ch) if gpu_ch else None,
                         meter_notes=list(getattr(r, "notes", []) or []))
            return w

        def enqueue():
            for _ in range(ops):
                x @ y

        out["A_ends_before_work"] = window("A", enqueue)
        out["B_waits_for_it"] = window("B", lambda: _sync(torch, dev))
        time.sleep(a.gap_s)
        out["idle_between"] = window("idle", lambda: time.sleep(a.gap_s))

        def enqueue_and_sync():
            enqueue()
            _sync(torch, dev)

        out["C_synchronized"] = window("C", enqueue_and_sync)
        del z
    if meter:
        meter.close()
    print(json.dumps(out))


# --- power samples against the counter ----------------------------------------------

class Poller(threading.Thread):
    """Reads one GPU's counter, power and power fields every period_s:
    samples of (t, energy mJ, power mW, instant mW or None, average field mW or None)."""

    def __init__(self, nv, gpu, period_s):
        super().__init__(daemon=True)
        self.nv, self.gpu, self.period_s = nv, gpu, period_s
        self.samples = []
        self.errors = []
        self._halt = threading.Event()
        self.fields_ok = True

    def run(self):
        nxt = time.monotonic()
        while not self._halt.is_set():
            t = time.monotonic()
            try:
                e = self.nv.energy_mj(self.gpu)
            except NvmlError as ex:
                e = None
                self._error(ex)
            try:
                p = self.nv.power_mw(self.gpu)
            except NvmlError as ex:
                p = None
                self._error(ex)
            inst = avg = None
            if self.fields_ok:
                try:
                    f = self.nv.fields(self.gpu, [FIELD_POWER_INSTANT, FIELD_POWER_AVERAGE])
                    inst = f[FIELD_POWER_INSTANT][1] if f[FIELD_POWER_INSTANT][0] == 0 else None
                    avg = f[FIELD_POWER_AVERAGE][1] if f[FIELD_POWER_AVERAGE][0] == 0 else None
                    if inst is None and avg is None:
                        self.fields_ok = False  # neither answered: stop asking, it costs a call
                except NvmlError as ex:
                    self.fields_ok = False
                    self._error(ex)
            self.samples.append((t, e, p, inst, avg))
            nxt += self.period_s
            self._halt.wait(max(0.0, nxt - time.monotonic()))

    def _error(self, ex):
        if len(self.errors) < 5:
            self.errors.append(str(ex))

    def stop(self):
        self._halt.set()
        self.join(5)


def value_at(ts, vs, t):
    """The last value read at or before t (what a reading at t would have got)."""
    lo, hi = 0, len(ts)
    while lo < hi:
        mid = (lo + hi) // 2
        if ts[mid] <= t:
            lo = mid + 1
        else:
            hi = mid
    return vs[lo - 1] if lo > 0 else None


def integrate(ts, ps, a, b):
    """Trapezoid integral of power samples (t, W) over [a, b], the ends
    interpolated; None where the samples do not reach around the window."""
    pts = [(t, p) for t, p in zip(ts, ps) if p is not None]
    if len(pts) < 2 or pts[0][0] > a or pts[-1][0] < b:
        return None
    times = [t for t, _ in pts]

    def at(t):
        k = max(1, min(len(pts) - 1, bisect.bisect_left(times, t)))
        (t0, p0), (t1, p1) = pts[k - 1], pts[k]
        return p0 if t1 == t0 else p0 + (p1 - p0) * (t - t0) / (t1 - t0)

    inner = pts[bisect.bisect_right(times, a):bisect.bisect_left(times, b)]
    seq = [(a, at(a))] + inner + [(b, at(b))]
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(seq, seq[1:]))


def update_period(ts, vs):
    """Median time between changes of a reading (its refresh period as seen)."""
    changes = [t for (t, v), (_, w) in zip(zip(ts[1:], vs[1:]), zip(ts, vs)) if v is not None and w is not None
               and v != w]
    gaps = [b - a for a, b in zip(changes, changes[1:])]
    return statistics.median(gaps) if gaps else None


def window_comparison(samples, t0, t1, lengths, coarse_every):
    """For each window length: windows tiling [t0, t1]; per window the
    counter's energy and the integrals of the power readings (every sample,
    and every coarse_every-th sample: powertrain's 100 ms interval). Returns
    {length: {"windows": n, series: {"median_pct", "p90_pct", "total_pct"}}}:
    per window |integral - counter| as a percentage of the counter's mean
    window energy (a window in which the counter did not move counts too),
    and all windows' integrals against all their counter energy."""
    ts = [s[0] for s in samples]
    energy = [s[1] for s in samples]
    series = {"power (averaged), every sample": [None if s[2] is None else s[2] / 1000 for s in samples],
              "instant power, every sample": [None if s[3] is None else s[3] / 1000 for s in samples]}
    sub = list(range(0, len(samples), coarse_every))
    series_coarse = {"power (averaged), 100 ms": [series["power (averaged), every sample"][k] for k in sub],
                     "instant power, 100 ms": [series["instant power, every sample"][k] for k in sub]}
    ts_coarse = [ts[k] for k in sub]
    out = {}
    for length in lengths:
        n = int((t1 - t0) // length + 1e-9)
        res = {"windows": n, "series": {}}
        if n == 0:
            out[length] = res
            continue
        edges = [(t0 + k * length, t0 + (k + 1) * length) for k in range(n)]
        counter = []
        for a, b in edges:
            ea, eb = value_at(ts, energy, a), value_at(ts, energy, b)
            counter.append(None if ea is None or eb is None else (eb - ea) / 1000)
        res["counter_j_median"] = statistics.median([c for c in counter if c is not None] or [float("nan")])
        for name, (tt, pp) in list({k: (ts, v) for k, v in series.items()}.items()) + \
                list({k: (ts_coarse, v) for k, v in series_coarse.items()}.items()):
            if all(p is None for p in pp):
                continue
            pairs = []
            for (a, b), c in zip(edges, counter):
                p = integrate(tt, pp, a, b)
                if p is not None and c is not None:
                    pairs.append((p, c))
            tot_p, tot_c = sum(p for p, _ in pairs), sum(c for _, c in pairs)
            if not pairs or tot_c <= 0:
                continue
            mean_c = tot_c / len(pairs)
            diffs = sorted(abs(p - c) / mean_c * 100 for p, c in pairs)
            res["series"][name] = {"median_pct": statistics.median(diffs),
                                   "p90_pct": diffs[min(len(diffs) - 1, int(0.9 * len(diffs)))],
                                   "total_pct": (tot_p - tot_c) / tot_c * 100 if tot_c > 0 else None,
                                   "compared": len(pairs)}
        out[length] = res
    return out


# --- the check ------------------------------------------------------------------------

class StepSkipped(Exception):
    pass


class StepFailed(Exception):
    pass


class Ran:
    def __init__(self, rc, out, timed_out, seconds):
        self.rc, self.out, self.timed_out, self.seconds = rc, out, timed_out, seconds

    def tail(self, n=6):
        lines = [ln for ln in self.out.splitlines() if ln.strip()]
        return "\n".join(lines[-n:])


def fmt_num(v, digits=3):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, int):
        return str(v)
    if v == 0:
        return "0"
    mag = math.floor(math.log10(abs(v)))
    decimals = max(0, digits - 1 - mag)
    return f"{v:.{min(decimals, 6)}f}"


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in r) + " |")
    return "\n".join(lines)


def one_line(text, limit=300):
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    s = lines[-1] if lines else ""
    return s if len(s) <= limit else s[:limit] + "…"


class Check:
    """Runs the steps, keeps the figures, writes the report after every step."""

    def __init__(self, a):
        self.a = a
        self.dry = a.dry_run
        self.start = time.monotonic()
        self.deadline = self.start + a.budget
        self.out_dir = Path(a.out or os.environ.get("OUT") or "gpu-check-out").resolve()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.md_path = self.out_dir / "gpu-check.md"
        self.json_path = self.out_dir / "gpu-check.json"
        self.log_path = self.out_dir / "gpu-check.log"
        self.db = self.out_dir / "gpu-check.db"
        for p in (self.log_path, self.db, Path(str(self.db) + "-wal"), Path(str(self.db) + "-shm")):
            if p.exists():
                p.unlink()
        self.work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
        self.log = open(self.log_path, "a", encoding="utf-8")
        self.results = []      # (step, status, seconds, note)
        self.sections = []     # (title, markdown)
        self.figures = {}
        self.device = "cpu" if self.dry else "cuda"
        self.python = None     # the Python with torch
        self.build_dir = None
        self.powertrain = None
        self.bench = None
        self.nvml = None
        self.nvml_why = ""
        self.nvml_library = None
        self.env = {}
        self.gpu = 0
        self.step_name = None
        self.step_deadline = None
        self.inject = dict(kv.split("=", 1) for kv in a.inject) if a.inject else {}
        self.timeboxes = {k: float(v) for k, v in (kv.split("=", 1) for kv in a.timebox)} if a.timebox else {}

    # time
    def left(self):
        return max(0.0, min(self.deadline, self.step_deadline or self.deadline) - time.monotonic())

    def budget_left(self):
        return max(0.0, self.deadline - time.monotonic())

    # logging and commands
    def say(self, text):
        print(text, flush=True)
        self.log.write(text + "\n")
        self.log.flush()

    def run(self, cmd, timeout=None, env=None, cwd=None, stop_signal=signal.SIGINT):
        """Runs cmd in its own process group with a time limit (default: the
        step's time left); on timeout the group gets stop_signal, then SIGTERM,
        then SIGKILL. Output goes to the log and is returned."""
        timeout = self.left() if timeout is None else min(timeout, self.left())
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.say(f"$ {shlex.join(str(c) for c in cmd)}")
        out_file = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
        t0 = time.monotonic()
        try:
            p = subprocess.Popen([str(c) for c in cmd], stdout=out_file, stderr=subprocess.STDOUT, env=full_env,
                                 cwd=cwd, start_new_session=True)
        except OSError as e:
            raise StepFailed(f"cannot run {cmd[0]}: {e}") from None
        timed_out = False
        try:
            p.wait(timeout=max(timeout, 0.1))
        except subprocess.TimeoutExpired:
            timed_out = True
            for sig, grace in ((stop_signal, 6), (signal.SIGTERM, 3), (signal.SIGKILL, 5)):
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    p.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
        try:  # whatever the command left running in its group would disturb the next measurement
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        seconds = time.monotonic() - t0
        out_file.seek(0)
        out = out_file.read()
        out_file.close()
        self.log.write(out + ("" if out.endswith("\n") or not out else "\n"))
        self.log.write(f"[exit {p.returncode}{', timed out' if timed_out else ''}, {seconds:.1f} s]\n")
        self.log.flush()
        return Ran(p.returncode, out, timed_out, seconds)

    def must(self, cmd, what, **kw):
        r = self.run(cmd, **kw)
        if r.timed_out:
            raise StepFailed(f"{what}: timed out after {r.seconds:.0f} s: {one_line(r.out)}")
        if r.rc != 0:
            raise StepFailed(f"{what}: exit {r.rc}: {one_line(r.out)}")
        return r

    def py_cmd(self, *args):
        return [self.python, str(SCRIPT), *map(str, args)]

    def pt(self, *args):
        if not self.powertrain:
            raise StepSkipped("no powertrain binary (the build step failed)")
        return [str(self.powertrain), *map(str, args)]

    def need_nvml(self):
        if not self.nvml:
            raise StepSkipped(f"skipped: {self.nvml_why or 'no NVIDIA driver'}")

    # steps
    def step(self, name, nominal, fn):
        prerequisite = name in ("env", "build")
        if self.a.only and name not in self.a.only and not prerequisite:
            return
        if name in (self.a.skip or []) and not prerequisite:
            self.results.append((name, "skipped", 0.0, "--skip"))
            self.write()
            return
        if self.python is None and name != "env":
            self.results.append((name, "skipped", 0.0, "no Python with torch (the env step failed)"))
            self.write()
            return
        box = self.timeboxes.get(name, nominal)
        left = self.budget_left()
        if left < min(box or left, 10.0) or left < 5.0:
            self.results.append((name, "skipped", 0.0, f"out of time ({left:.0f} s of the budget left)"))
            self.write()
            return
        self.step_name = name
        self.step_deadline = time.monotonic() + (box if box else left)
        self.say(f"\n== {name} (time box {min(box or left, left):.0f} s) ==")
        t0 = time.monotonic()
        status, note = "passed", ""
        try:
            if name in self.inject:
                self._injected(self.inject[name])
            res = fn() or {}
            note = res.get("note", "")
            if res.get("md"):
                self.sections.append((res.get("title", name), res["md"]))
            if res.get("figures") is not None:
                self.figures[name] = res["figures"]
            status = res.get("status", "passed")
        except StepSkipped as e:
            status, note = "skipped", str(e).removeprefix("skipped: ")
        except StepFailed as e:
            status, note = "failed", str(e)
        except Exception as e:  # noqa: BLE001 - a broken step is recorded, the rest still runs
            status, note = "failed", f"{type(e).__name__}: {e}"
            self.log.write(traceback.format_exc())
        seconds = time.monotonic() - t0
        self.say(f"== {name}: {status} in {seconds:.1f} s{': ' + note if note else ''}")
        self.results.append((name, status, seconds, note))
        self.step_name = self.step_deadline = None
        self.write()

    def _injected(self, how):
        """Test hook (--inject STEP=fail|hang): a step that breaks or hangs."""
        if how == "hang":
            self.must(["sleep", "100000"], "injected hang")
        raise StepFailed("injected failure")

    # the report
    def title_line(self):
        gpu = self.env.get("gpu_names") or []
        what = ", ".join(gpu) if gpu else "no GPU"
        kind = "dry run on the CPU: no figure below is a GPU measurement" if self.dry else "GPU check"
        return f"# {kind} ({what}), {datetime.date.today().isoformat()}"

    def write(self):
        e = self.env
        lines = [self.title_line(), ""]
        facts = [f"GPU: {', '.join(e.get('gpu_names') or []) or 'none'}",
                 f"driver {e.get('driver', '-')}", f"CUDA driver {e.get('cuda_driver', '-')}",
                 f"torch {e.get('torch', '-')} (CUDA {e.get('torch_cuda') or '-'}, cuDNN {e.get('cudnn') or '-'})",
                 f"Python {e.get('python', '-')}",
                 f"powertrain: {e.get('powertrain_version', '-')}",
                 f"{os.cpu_count()} CPUs, {platform.node()}",
                 f"NVML read through {e.get('nvml', '-')}"]
        lines += ["; ".join(facts) + ".", "",
                  "Command (every figure below comes from it; GPU clocks, power limits and modes untouched):", "",
                  "    " + " ".join(["scripts/gpu-check"] + [shlex.quote(x) for x in self.a.argv]), "",
                  f"Wall time {time.monotonic() - self.start:.0f} s of a {self.a.budget:.0f} s budget.", "",
                  md_table(["step", "status", "seconds", "note"],
                           [(n, s, f"{sec:.1f}", note) for n, s, sec, note in self.results]), ""]
        for title, md in self.sections:
            lines += [f"## {title}", "", md.rstrip(), ""]
        tmp = self.md_path.with_suffix(".md.tmp")
        tmp.write_text("\n".join(lines), encoding="utf-8")
        os.replace(tmp, self.md_path)
        doc = {"environment": self.env, "steps": [dict(step=n, status=s, seconds=sec, note=note)
                                                   for n, s, sec, note in self.results],
               "figures": self.figures, "dry_run": self.dry}
        tmp = self.json_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, self.json_path)

    # --- env ---------------------------------------------------------------------------
    def step_env(self):
        a = self.a
        self.python = self.choose_python()
        e = self.env
        e["python"] = self.python
        r = self.run(self.py_cmd("describe", "--device", self.device), timeout=60)
        try:
            d = json.loads(r.out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise StepFailed(f"{self.python} describe: {one_line(r.out)}") from None
        e.update(torch=d.get("torch"), torch_cuda=d.get("torch_cuda"), cudnn=d.get("cudnn"),
                 python_version=d.get("python_version"))
        library = a.nvml_library or os.environ.get("POWERTRAIN_NVML_LIBRARY") or None
        self.nvml_library = library
        self.nvml, self.nvml_why = open_nvml(library)
        rows = []
        if self.nvml:
            nv = self.nvml
            e["nvml"] = nv.backend + (f" ({'; '.join(nv.notes)})" if nv.notes else "")
            for what, fn in (("driver", nv.driver_version), ("cuda_driver", nv.cuda_driver_version)):
                try:
                    e[what] = fn()
                except (NvmlError, AttributeError) as ex:
                    e[what] = f"unknown ({ex})"
            e["gpu_names"] = []
            for i in range(nv.count()):
                name = nv.name(i)
                e["gpu_names"].append(name)
                energy = nv.try_energy_mj(i)
                try:
                    f = nv.fields(i, [FIELD_POWER_INSTANT, FIELD_POWER_AVERAGE])
                except NvmlError as ex:
                    f = {FIELD_POWER_INSTANT: (ex.code, None), FIELD_POWER_AVERAGE: (ex.code, None)}
                try:
                    limit = f"{nv.power_limit_mw(i) / 1000:.0f} W"
                except NvmlError as ex:
                    limit = str(ex)
                inst_rc = f[FIELD_POWER_INSTANT][0]
                rows.append((i, name, nv.uuid(i), "yes" if energy is not None else "no", limit,
                             "yes" if inst_rc == 0 else f"no ({NVML_RETURN_NAMES.get(inst_rc, inst_rc)})",
                             "yes" if f[FIELD_POWER_AVERAGE][0] == 0 else "no"))
                e.setdefault("gpus", []).append({"index": i, "name": name, "energy_counter": energy is not None,
                                                 "instant_power_field": inst_rc == 0, "power_limit": limit})
            if not rows:
                self.nvml_why = "NVML sees no GPU"
                self.nvml = None
        else:
            e["nvml"] = f"not read: {self.nvml_why}"
            e["driver"] = self.nvml_why
            if d.get("gpus"):
                e["gpu_names"] = [g["name"] for g in d["gpus"]]
        tools = []
        for tool, args in (("cmake", ["--version"]), ("ninja", ["--version"]), ("g++", ["--version"]),
                           ("nvcc", ["--version"]), ("pkg-config", ["--version"]), ("nvidia-smi", ["-L"])):
            path = shutil.which(tool)
            if not path:
                tools.append((tool, "not found"))
                continue
            try:
                out = subprocess.run([path, *args], capture_output=True, text=True, timeout=20).stdout
            except (OSError, subprocess.TimeoutExpired) as ex:
                out = str(ex)
            lines = [ln for ln in out.splitlines() if ln.strip()]
            tools.append((tool, (lines[-1] if tool == "nvcc" and lines else lines[0] if lines else "?")[:120]))
        md = [f"Python with torch: `{self.python}` (Python {d.get('python_version')}), torch {d.get('torch')}, "
              f"CUDA {d.get('torch_cuda')}, cuDNN {d.get('cudnn')}, CUDA available: {d.get('cuda_available')}.", ""]
        if rows:
            md += [md_table(["NVML index", "name", "UUID", "energy counter", "enforced power limit (read only)",
                             "instant power field (186)", "average power field (185)"], rows), ""]
        else:
            md += [f"NVML: {self.nvml_why}.", ""]
        md += [md_table(["tool", "version"], tools)]
        self.figures["tools"] = dict(tools)
        if not self.dry and (not self.nvml or not d.get("cuda_available")):
            why = [f"no NVML: {self.nvml_why}"] if not self.nvml else []
            why += [] if d.get("cuda_available") else [f"torch {d.get('torch')} sees no GPU"]
            return {"md": "\n".join(md), "title": "Device and software", "status": "failed", "note": "; ".join(why)}
        return {"md": "\n".join(md), "title": "Device and software",
                "note": f"{len(rows)} GPU(s)" if rows else f"NVML: {self.nvml_why}"}

    def choose_python(self):
        """The Python with torch: --python, $POWERTRAIN_PYTHON, the build's, the
        project's environment, else python3."""
        cands = [self.a.python, os.environ.get("POWERTRAIN_PYTHON")]
        if self.a.build_dir:
            cache = Path(self.a.build_dir) / "CMakeCache.txt"
            if cache.exists():
                m = re.search(r"^POWERTRAIN_PYTHON:[A-Z]*=(.+)$", cache.read_text(errors="replace"), re.M)
                if m:
                    cands.append(m.group(1).strip())
        venv = os.environ.get("POWERTRAIN_VENV") or str(
            Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "powertrain" / "venv")
        cands += [str(Path(venv) / "bin" / "python"), shutil.which("python3")]
        for c in cands:
            if not c or not Path(c).exists():
                continue
            ok = subprocess.run([c, "-c", "import torch"], capture_output=True, timeout=120).returncode == 0
            if ok:
                return c
        raise StepFailed("no Python that imports torch (give --python)")

    # --- build ------------------------------------------------------------------------
    def step_build(self):
        """The dry run and --no-build use the build folder as it is; otherwise
        the documented build runs (incremental where the folder has one)."""
        a = self.a
        build_dir = Path(a.build_dir or ROOT / "build-gpu-check").resolve()
        binary = build_dir / "src" / "cli" / "powertrain"
        md = []
        if self.dry or a.no_build:
            if not binary.exists():
                raise StepFailed(f"no powertrain in {build_dir} (build it, or give --build-dir)")
            r = self.must([binary, "--version"], "powertrain --version", timeout=60)
            self.use_build(build_dir)
            md.append(f"Used the build folder `{build_dir}` as it is (no build); its powertrain runs:\n\n    "
                      + "\n    ".join(r.out.strip().splitlines()))
            fig = {"build_dir": str(build_dir), "built": False}
            if self.dry:
                md.append("\nA GPU run builds with:\n\n    " + " ".join(self.build_command(build_dir, False)[0]))
                if a.deps:  # unpacked as a GPU run would, into a folder of its own, to try them
                    prefix, env = self.unpack_deps(Path(a.deps), self.work / "deps")
                    fig["deps_env"] = env
                    fig["pc_files"] = {pc.name: pc.read_text() for pc in prefix.rglob("*.pc")}
                    md.append(f"\nThe .deb files of `{a.deps}` unpack into `{prefix}`; the build would run with "
                              + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k != "PATH"))
            return {"md": "\n".join(md), "title": "Build", "note": f"used {build_dir} as it is",
                    "figures": fig}
        cmd, env, args_note = self.build_command(build_dir)
        t0 = time.monotonic()
        r = self.run(cmd, env=env, cwd=ROOT, stop_signal=signal.SIGTERM)
        if r.rc != 0 and not r.timed_out and "benchmark" in r.out and "POWERTRAIN_BUILD_BENCH" not in " ".join(cmd):
            md.append(f"The build with the benchmarks failed ({one_line(r.out)}); again without them "
                      "(no race against Python then).\n")
            env["POWERTRAIN_BUILD_TARGETS"] = "powertrain powertrain-train"
            cmd = cmd + ["-DPOWERTRAIN_BUILD_BENCH=OFF"]
            r = self.run(cmd, env=env, cwd=ROOT, stop_signal=signal.SIGTERM)
        seconds = time.monotonic() - t0
        md.append("Command (the README's build against your own PyTorch; `scripts/setup` is skipped: it "
                  f"installs Debian packages with apt-get){args_note}:\n\n    " +
                  " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k.startswith("POWERTRAIN")) +
                  " " + shlex.join(str(c) for c in cmd))
        if r.rc != 0 or r.timed_out:
            raise StepFailed(("timed out" if r.timed_out else f"exit {r.rc}") + f" after {seconds:.0f} s: "
                             + one_line(r.out))
        native = self.run(["cmake", "--build", build_dir, "--target", "powertrain_native"], timeout=120, env=env)
        if not binary.exists():
            raise StepFailed(f"the build made no {binary}")
        jobs = os.environ.get("POWERTRAIN_JOBS") or os.cpu_count()
        md.append(f"\nBuilt in {seconds:.0f} s with {jobs} jobs. The Python module powertrain._native: "
                  + ("built" if native.rc == 0 else f"not built ({one_line(native.out)})") + ".")
        self.use_build(build_dir)
        return {"md": "\n".join(md), "title": "Build", "note": f"built in {seconds:.0f} s",
                "figures": {"build_dir": str(build_dir), "built": True, "seconds": seconds,
                            "native_module": native.rc == 0}}

    def build_command(self, build_dir, unpack=True):
        env = {"POWERTRAIN_PYTHON": self.python, "POWERTRAIN_BUILD_DIR": str(build_dir),
               "POWERTRAIN_BUILD_TARGETS": self.a.build_targets}
        note = ""
        if self.a.deps and unpack:
            prefix, added = self.unpack_deps(Path(self.a.deps), build_dir / "carried-deps")
            env.update(added)
            note = f", with the Debian packages of `{self.a.deps}` unpacked into `{prefix}` (no root install)"
        return [str(ROOT / "scripts" / "build"), "-DPOWERTRAIN_BUILD_TESTS=OFF"], env, note

    def unpack_deps(self, folder, prefix):
        """Unpacks the .deb files of --deps (scripts/gpu-check --prepare-carry)
        into a private prefix (inside the build folder, which the binaries'
        RPATH then names) and points CMake and pkg-config at it."""
        debs = sorted(folder.glob("*.deb"))
        if not debs:
            raise StepFailed(f"--deps {folder}: no .deb files")
        for deb in debs:
            self.must(["dpkg-deb", "-x", deb, prefix], f"unpacking {deb.name}", timeout=60)
        usr = prefix / "usr"
        for pc in usr.rglob("*.pc"):
            text = pc.read_text()
            pc.write_text(re.sub(r"^(\w+)=/usr(?=/|\s*$)", lambda m: f"{m.group(1)}={usr}", text, flags=re.M))
        libdirs = [str(p) for p in (usr / "lib" / "x86_64-linux-gnu", usr / "lib") if p.exists()]
        pkg = [str(p) for p in usr.glob("lib/*/pkgconfig")] + [str(p) for p in usr.glob("share/pkgconfig")]
        env = {"CMAKE_PREFIX_PATH": os.pathsep.join([str(usr)] + [p for p in os.environ.get(
                   "CMAKE_PREFIX_PATH", "").split(os.pathsep) if p]),
               "PKG_CONFIG_PATH": os.pathsep.join(pkg + [p for p in os.environ.get(
                   "PKG_CONFIG_PATH", "").split(os.pathsep) if p]),
               "PATH": str(usr / "bin") + os.pathsep + os.environ.get("PATH", ""),
               "LD_LIBRARY_PATH": os.pathsep.join(libdirs + [p for p in os.environ.get(
                   "LD_LIBRARY_PATH", "").split(os.pathsep) if p])}
        # pkgconf looks for its personality files beside itself; the plain name works too.
        if not shutil.which("pkg-config") and (usr / "bin" / "pkgconf").exists() \
                and not (usr / "bin" / "pkg-config").exists():
            (usr / "bin" / "pkg-config").symlink_to("pkgconf")
        self.env["deps"] = [d.name for d in debs]
        return prefix, env

    def use_build(self, build_dir):
        self.build_dir = build_dir
        self.powertrain = build_dir / "src" / "cli" / "powertrain"
        bench = build_dir / "bench" / "bench_train"
        self.bench = bench if bench.exists() else None

    # --- version -----------------------------------------------------------------------
    def step_version(self):
        v = self.must(self.pt("--version"), "powertrain --version", timeout=60)
        # The training executable loads LibTorch: its line says how many GPUs CUDA sees.
        trainer = str(self.powertrain.with_name("powertrain-train"))
        vt = self.must([trainer, "--version"], "powertrain-train --version", timeout=60)
        self.env["powertrain_version"] = " / ".join(vt.out.strip().splitlines())
        d = self.must(self.pt("devices", "--json"), "powertrain devices --json", timeout=60)
        try:
            doc = json.loads(d.out[d.out.index("["):] if d.out.lstrip().startswith("[") else d.out[d.out.index("{"):])
        except ValueError:
            raise StepFailed(f"devices --json is not JSON: {one_line(d.out)}") from None
        sources = doc if isinstance(doc, list) else doc.get("sources", [])
        rows = [(s.get("source"), "yes" if s.get("available") else "no",
                 one_line(s.get("reason") or s.get("description") or "", 160),
                 len(s.get("channels") or [])) for s in sources]
        md = ["    $ powertrain --version", *("    " + ln for ln in v.out.strip().splitlines()),
              "    $ powertrain-train --version", *("    " + ln for ln in vt.out.strip().splitlines()), "",
              "`powertrain devices --json`, summarized:", "",
              md_table(["source", "available", "reason", "channels"], rows), "",
              "and as printed:", "",
              *("    " + ln for ln in json.dumps(doc, indent=1).splitlines())]
        nvml = [s for s in sources if s.get("source") == "nvml"]
        status = "passed"
        note = vt.out.strip().splitlines()[-1] if vt.out.strip() else ""
        if not self.dry and not (nvml and nvml[0].get("available")):
            status, note = "failed", "powertrain does not find NVML: " + one_line(str(nvml[0].get("reason")) if nvml
                                                                                  else "no nvml source")
        return {"md": "\n".join(md), "title": "powertrain --version and devices", "status": status, "note": note,
                "figures": {"version": v.out.strip(), "training_version": vt.out.strip(), "devices": doc}}

    # --- measure against the counter ---------------------------------------------------
    def idle_power(self, seconds):
        """Average GPU power over an idle spell, from the counter."""
        nv = self.nvml
        e0, t0 = nv.try_energy_mj(self.gpu), time.monotonic()
        time.sleep(seconds)
        e1, t1 = nv.try_energy_mj(self.gpu), time.monotonic()
        return None if e0 is None or e1 is None else (e1 - e0) / 1000 / (t1 - t0)

    def measure_load(self, device, seconds, tag, size=None):
        """powertrain measure --json of a load; (report, NVML counter deltas by GPU, wall s, Ran)."""
        report = self.work / f"measure-{tag}.json"
        load = self.py_cmd("load", "--kind", "steady", "--seconds", seconds, "--device", device,
                           *(["--size", size] if size else []), *(["--threads", 1] if device == "cpu" else []))
        nv = self.nvml
        before = {i: nv.try_energy_mj(i) for i in range(nv.count())} if nv else {}
        t0 = time.monotonic()
        r = self.run(self.pt("measure", "--json", "-o", report, "--", *load), timeout=seconds + 90)
        wall = time.monotonic() - t0
        after = {i: nv.try_energy_mj(i) for i in range(nv.count())} if nv else {}
        if r.timed_out or r.rc != 0:
            raise StepFailed(f"powertrain measure: {'timed out' if r.timed_out else f'exit {r.rc}'}: {one_line(r.out)}")
        doc = json.loads(report.read_text())
        deltas = {i: (after[i] - before[i]) / 1000 if before.get(i) is not None and after.get(i) is not None
                  else None for i in before}
        return doc, deltas, wall, r

    def step_measure(self):
        seconds = 1.0 if self.dry else self.a.measure_s
        idle_w = self.idle_power(2.0) if self.nvml else None
        doc, deltas, wall, _ = self.measure_load(self.device, seconds, "gpu")
        self.measured_gpu_load = doc
        what = "bf16 matrix products of 8192 x 8192" if self.device != "cpu" else "float32 products of 256 x 256"
        md = [f"`powertrain measure --json -- python scripts/gpu_check.py load --kind steady --seconds {seconds:g} "
              f"--device {self.device}` ({what}, back to back), with NVML's energy counter read by the check "
              "just before the command started and just after it ended.", ""]
        fig = {"duration_s": doc.get("duration_s"), "energy_j": doc.get("energy_j"), "method": doc.get("method"),
               "wall_s": wall, "idle_w": idle_w, "gpus": []}
        channels = {c.get("id"): c for c in doc.get("channels", [])}
        rows = []
        for i, delta in deltas.items():
            ch = channels.get(f"nvml:gpu{i}")
            # What the meter read (the machine's figure where the report keeps
            # both), and what it charged the command with.
            pt_j = ch.get("machine_energy_j", ch.get("energy_j")) if ch else None
            own_j = ch.get("energy_j") if ch else None
            gap_s = wall - (doc.get("duration_s") or 0)
            gap_j = gap_s * idle_w if idle_w is not None else None
            diff = pt_j - delta if pt_j is not None and delta is not None else None
            pct = diff / delta * 100 if diff is not None and delta else None
            inner = delta - gap_j if delta is not None and gap_j is not None else None
            pct_inner = (pt_j - inner) / inner * 100 if pt_j is not None and inner else None
            rows.append((f"gpu{i}", fmt_num(delta), fmt_num(pt_j), fmt_num(own_j), ch.get("method") if ch else "-",
                         fmt_num(diff), fmt_num(pct), fmt_num(wall), fmt_num(doc.get("duration_s")), fmt_num(gap_j),
                         fmt_num(pct_inner)))
            fig["gpus"].append({"gpu": i, "counter_j": delta, "powertrain_j": pt_j, "powertrain_charged_j": own_j,
                                "diff_j": diff, "diff_pct": pct, "gap_s": gap_s, "gap_energy_j_at_idle": gap_j,
                                "diff_pct_without_gap": pct_inner})
        if rows:
            md += [md_table(["GPU", "NVML counter, read by the check (J)", "powertrain, read (J)",
                             "powertrain, charged to the command (J)", "method", "read - counter (J)", "apart (%)",
                             "check's window (s)", "powertrain's window (s)", "gap x idle power (J)",
                             "apart without the gap (%)"], rows), "",
                   f"Idle power before the run (counter over 2 s): {fmt_num(idle_w)} W. The check's window also "
                   "holds powertrain's start and exit, so powertrain should read less by about the gap's energy; "
                   "the last column takes it off the counter's figure."]
        else:
            md += [f"NVML counter: skipped: {self.nvml_why or 'no NVIDIA driver'}.", "",
                   f"powertrain measured {fmt_num(doc.get('energy_j'))} J in {fmt_num(doc.get('duration_s'))} s "
                   f"({doc.get('method')})."]
        note = "; ".join(f"gpu{g['gpu']}: {fmt_num(g['diff_pct'])} % apart ({fmt_num(g['diff_pct_without_gap'])} % "
                         "without the gap)" for g in fig["gpus"]) or \
            f"counter skipped: {self.nvml_why or 'no NVIDIA driver'}; powertrain measured {fmt_num(doc.get('energy_j'))} J"
        status = "passed"
        if not self.dry and not any(g["powertrain_j"] is not None for g in fig["gpus"]):
            status, note = "failed", "powertrain reported no NVML channel"
        return {"md": "\n".join(md), "title": "powertrain measure against NVML's energy counter", "note": note,
                "figures": fig, "status": status}

    # --- windows -----------------------------------------------------------------------
    def step_windows(self):
        self.need_nvml()
        nv = self.nvml
        lengths = [0.1, 0.3, 1.0] if self.dry else [0.1, 1.0, 10.0]
        seconds = 2.2 if self.dry else self.a.window_load_s
        period = 0.01
        coarse = 10  # every 10th 10 ms sample: powertrain's default 100 ms interval
        fig = {"poll_s": period, "loads": {}}
        rows_by_load = []
        md = []
        for kind in ("steady", "bursty"):
            poller = Poller(nv, self.gpu, period)
            poller.start()
            try:
                r = self.run(self.py_cmd("load", "--kind", kind, "--seconds", seconds, "--device", self.device,
                                         *(["--threads", 1] if self.dry else [])), timeout=seconds + 60)
            finally:
                poller.stop()
            if r.rc != 0 or r.timed_out:
                raise StepFailed(f"{kind} load: {'timed out' if r.timed_out else f'exit {r.rc}'}: {one_line(r.out)}")
            marks = {}
            for ln in r.out.splitlines():
                if ln.startswith("{"):
                    try:
                        ev = json.loads(ln)
                        marks[ev.get("event")] = ev
                    except ValueError:
                        pass
            if "start" not in marks or "end" not in marks:
                raise StepFailed(f"{kind} load printed no start/end: {one_line(r.out)}")
            t0, t1 = marks["start"]["t"], marks["end"]["t"]
            s = [x for x in poller.samples if t0 - 2.0 <= x[0] <= t1 + 0.5]
            ts = [x[0] for x in s]
            cmp = window_comparison(s, t0, t1, lengths, coarse)
            periods = {"counter": update_period(ts, [x[1] for x in s]),
                       "power (averaged)": update_period(ts, [x[2] for x in s]),
                       "instant power": update_period(ts, [x[3] for x in s])}
            n_inst = sum(1 for x in s if x[3] is not None)
            ran = [x for x in s if t0 <= x[0] <= t1]
            e_run = (value_at(ts, [x[1] for x in s], t1) - value_at(ts, [x[1] for x in s], t0)) / 1000 \
                if ran and value_at(ts, [x[1] for x in s], t0) is not None else None
            fig["loads"][kind] = {"seconds": t1 - t0, "samples": len(s), "counter_j": e_run,
                                  "avg_w": e_run / (t1 - t0) if e_run else None, "update_period_s": periods,
                                  "instant_samples": n_inst, "windows": cmp, "errors": poller.errors}
            for length, res in cmp.items():
                for name, st in res["series"].items():
                    rows_by_load.append((kind, f"{length:g} s", res["windows"], fmt_num(res.get("counter_j_median")),
                                         name, fmt_num(st["median_pct"]), fmt_num(st["p90_pct"]),
                                         fmt_num(st["total_pct"])))
                if not res["series"]:
                    rows_by_load.append((kind, f"{length:g} s", res["windows"], fmt_num(res.get("counter_j_median")),
                                         "(no power readings to compare)", "-", "-", "-"))
            md.append(f"- {kind}: {t1 - t0:.1f} s, {fmt_num(e_run)} J by the counter "
                      f"({fmt_num(e_run / (t1 - t0) if e_run else None)} W); {len(s)} polls every "
                      f"{period * 1000:.0f} ms; seen update periods: counter {fmt_num(periods['counter'])} s, "
                      f"averaged power {fmt_num(periods['power (averaged)'])} s, instant power "
                      f"{fmt_num(periods['instant power'])} s"
                      + (f"; read errors: {'; '.join(poller.errors)}" if poller.errors else ""))
        inst = any(v["instant_samples"] for v in fig["loads"].values())
        fig["instant_power_given"] = inst
        head = [f"A thread of the check polled NVML every {period * 1000:.0f} ms (energy counter, "
                "`nvmlDeviceGetPowerUsage`, the instant and average power fields) while a load ran: steady (matrix "
                "products back to back) and bursty (busy and idle spells of 20 to 500 ms). Windows of each length "
                "tile the load; in each, the power readings integrated with the trapezoid rule (every poll, and "
                "every 10th poll: powertrain's 100 ms interval) are compared with the counter's difference. "
                "|integral - counter| per window, as a percentage of the counter's mean window energy: median and "
                "90th percentile; `total`: all windows together.", "",
                f"Instant power (field 186) given by the driver: {'yes' if inst else 'no'}.", ""] + md + [""]
        table = md_table(["load", "window", "windows", "counter J (median)", "power integrated", "median |apart| %",
                          "p90 |apart| %", "total apart %"], rows_by_load)
        return {"md": "\n".join(head + [table]), "title": "Power samples integrated against the energy counter",
                "figures": fig, "note": f"instant power {'given' if inst else 'not given'}"}

    # --- queued work --------------------------------------------------------------------
    def step_queued(self):
        env = {"PYTHONPATH": os.pathsep.join(p for p in [str(ROOT / "python"),
                                                         str(self.build_dir / "python") if self.build_dir else "",
                                                         os.environ.get("PYTHONPATH", "")] if p)}
        args = ["queued", "--device", self.device, "--work-s", 0.3 if self.dry else 2.0,
                "--gap-s", 0.2 if self.dry else 1.0]
        if self.nvml_library:
            args += ["--nvml-library", self.nvml_library]
        r = self.must(self.py_cmd(*args), "queued-work program", timeout=120, env=env)
        doc = json.loads(r.out.strip().splitlines()[-1])
        rows = []
        names = {"A_ends_before_work": "A: ends right after the work is queued (no synchronization)",
                 "B_waits_for_it": "B: the next window, which synchronizes",
                 "idle_between": "idle window between",
                 "C_synchronized": "C: the same work, synchronized before the window ends"}
        for key, label in names.items():
            w = doc.get(key) or {}
            rows.append((label, fmt_num(w.get("wall_s")), fmt_num(w.get("counter_j")), fmt_num(w.get("meter_gpu_j")),
                         fmt_num(w.get("meter_j")), w.get("meter_method", "-"),
                         "; ".join(w.get("meter_notes", []))[:200] or "-"))
        md = [f"`python scripts/gpu_check.py queued --device {self.device}`: {doc.get('ops')} matrix products of "
              f"{fmt_num(doc.get('op_s'))} s each (about {fmt_num(doc.get('work_s'))} s of GPU work) queued at once. "
              f"Energy per window by powertrain's Meter ({doc.get('meter')}) and by NVML's counter read at the "
              f"window's ends ({doc.get('nvml')}).", "",
              md_table(["window", "wall s", "GPU counter J (read by the program)", "Meter GPU J", "Meter total J",
                        "Meter method", "Meter notes"], rows)]
        if self.dry:
            md += ["", "On the CPU every product runs when it is called: nothing is queued, so this only exercises "
                       "the program."]
        a, c = doc.get("A_ends_before_work", {}), doc.get("C_synchronized", {})
        key = next((k for k in ("meter_gpu_j", "counter_j", "meter_j") if c.get(k) is not None), "counter_j")
        note = ""
        if a.get(key) is not None and c.get(key):
            note = f"A holds {a[key] / c[key] * 100:.0f} % of C's energy ({key.removesuffix('_j').replace('_', ' ')})"
        return {"md": "\n".join(md), "title": "A window that ends before queued GPU work finishes",
                "figures": doc, "note": note}

    # --- attribution --------------------------------------------------------------------
    def step_attribution(self):
        rows, fig = [], {}
        cases = []
        used = getattr(self, "measured_gpu_load", None)
        if used is None:
            used = self.measure_load(self.device, 1.0 if self.dry else 4.0, "attr-gpu")[0]
        cases.append(("a command that uses the GPU (the measure step's load)", used, True))
        idle = self.measure_load("cpu", 1.0 if self.dry else 4.0, "attr-cpu", size=128)[0]
        cases.append(("a command that does not touch the GPU (the same program on the CPU)", idle, False))
        verdicts = []
        for label, doc, expect_used in cases:
            top = {k: v for k, v in doc.items() if re.search(r"gpu|attribut|own|machine", k)
                   and not isinstance(v, (dict, list))}
            gpu_ch = [c for c in doc.get("channels", []) if c.get("component") == "gpu"]
            fig[label] = {"top": top, "gpu_channels": gpu_ch, "energy_j": doc.get("energy_j"),
                          "method": doc.get("method")}
            if not gpu_ch:
                rows.append((label, "-", "-", "-", "-", "-", "-", fmt_num(doc.get("energy_j")),
                             fmt_num(doc.get("excluded_gpu_energy_j")),
                             "no GPU channel" + (f" ({self.nvml_why})" if self.nvml_why else "")))
                continue
            excluded = doc.get("excluded_gpu_energy_j")
            for c in gpu_ch:
                u = c.get("used_by_command", "absent")
                # Charged: the GPU's energy is in the command's total. With one
                # GPU, excluded_gpu_energy_j says it; else the channel's flags.
                if excluded is not None and len(gpu_ch) == 1:
                    charged = excluded < 0.5 * (c.get("energy_j") or 0.0)
                else:
                    charged = bool(c.get("in_total")) and u is not False
                verdict = "field absent" if u == "absent" else "unknown to powertrain" if u is None else \
                    "as expected" if bool(u) == expect_used and charged == expect_used else "NOT as expected"
                verdicts.append(verdict)
                extra = {k: v for k, v in c.items() if k not in ("id", "device", "component", "method", "in_total",
                                                                  "energy_j", "avg_power_w", "peak_power_w",
                                                                  "used_by_command", "use_note")}
                rows.append((label, c.get("id"), u, c.get("in_total"), "yes" if charged else "no",
                             fmt_num(c.get("energy_j")), one_line(c.get("use_note", "") or "-", 160) +
                             (f" {json.dumps(extra)}" if extra else ""), fmt_num(doc.get("energy_j")),
                             fmt_num(excluded), verdict))
        md = ["`powertrain measure --json` of a command that runs on the GPU and of one that does not; per GPU "
              "channel the fields the report gives about its use (the attribution of issue 23, whatever fields "
              "this build has), and whether the GPU is charged only when used.", "",
              md_table(["command", "channel", "used_by_command", "in_total", "charged", "GPU J",
                        "note / other fields", "total J", "excluded GPU J", "verdict"], rows)]
        for label, doc, _ in cases:
            top = fig[label]["top"]
            if top:
                md += ["", f"Top-level GPU/attribution fields, {label}: `{json.dumps(top)}`"]
        note = ", ".join(sorted(set(verdicts))) if verdicts else "no GPU channels"
        status = "passed"
        if not self.dry and "NOT as expected" in verdicts:
            status = "failed"
        return {"md": "\n".join(md), "title": "Only the GPU in use is charged (one GPU)", "figures": fig,
                "note": note, "status": status}

    # --- studies ------------------------------------------------------------------------
    def fashion_dir(self):
        for d in [self.a.data_dir, os.environ.get("POWERTRAIN_DATA_DIR") and
                  str(Path(os.environ["POWERTRAIN_DATA_DIR"]) / "fashion-mnist"),
                  str(ROOT / ".gpu-carry" / "fashion-mnist"), "/usr/share/datasets/fashion-mnist"]:
            if d and list(Path(d).glob("train-images-idx3-ubyte*")):
                return str(Path(d).resolve())
        return None

    def study_spec(self, example, name, changes):
        import tomllib
        spec = tomllib.loads((ROOT / "examples" / example).read_text())
        spec["name"] = name
        spec["description"] = f"{spec.get('description', '')} (gpu-check: {name})"
        fm = self.fashion_dir()
        spec.setdefault("workload", {})
        if spec["workload"].get("dataset", "fashion-mnist") == "fashion-mnist":
            if fm:
                spec["workload"]["data_dir"] = fm
            else:
                spec["workload"]["dataset"] = "synthetic-images"
                spec["workload"].setdefault("data", {})["train_samples"] = 2000
        for path, value in changes.items():
            node = spec
            keys = path.split(".")
            for k in keys[:-1]:
                node = node.setdefault(k, {})
            if value is None:
                node.pop(keys[-1], None)
            else:
                node[keys[-1]] = value
        if self.dry:
            spec.setdefault("workload", {}).setdefault("data", {})["max_samples"] = 64
            spec["grid"] = {"batch_sizes": [16, 64], "learning_rates": [0.01]}
            spec.setdefault("training", {}).update(max_epochs=1, threads=1)
            spec.pop("repeats", None)
            spec["seeds"] = [0]
            spec.setdefault("execution", {}).update(cooldown_s=0, warmup_s=0)
        path = self.work / f"{name}.toml"
        path.write_text(to_toml(spec))
        return path, spec

    def run_study(self, spec_path, timeout=None):
        return self.run(self.pt("sweep", spec_path, "--db", self.db, "--quiet"), timeout=timeout)

    def study_rows(self, study):
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        con.row_factory = sqlite3.Row
        try:
            trials = [dict(r) for r in con.execute(
                "SELECT * FROM trial_results WHERE study = ? ORDER BY trial_id", (study,))]
            for t in trials:
                if t.get("run_id") is None:
                    continue
                g = con.execute("SELECT SUM(c.energy_j) AS gpu_j, COUNT(DISTINCT c.epoch) AS n FROM epoch_channels c "
                                "WHERE c.run_id = ? AND c.component = 'gpu' AND c.in_total = 1",
                                (t["run_id"],)).fetchone()
                t["gpu_j"] = g["gpu_j"]
                e = con.execute("SELECT COUNT(*) AS n, SUM(energy_j) AS j FROM epochs WHERE run_id = ?",
                                (t["run_id"],)).fetchone()
                t["epochs_stored"], t["epochs_j"] = e["n"], e["j"]
                try:  # schema 8: what the meters read, beside the run's own energy
                    t["epochs_machine_j"] = con.execute("SELECT SUM(machine_energy_j) FROM epochs WHERE run_id = ?",
                                                        (t["run_id"],)).fetchone()[0]
                except sqlite3.OperationalError:
                    t["epochs_machine_j"] = None
        finally:
            con.close()
        return trials

    def study_table(self, trials):
        rows = []
        for t in trials:
            n = t.get("epochs_stored") or 0
            rows.append((t.get("batch_size"), fmt_num(t.get("learning_rate")), t.get("seed"), t.get("status"), n,
                         fmt_num(t["epochs_j"] / n if n else None),
                         fmt_num(t["epochs_machine_j"] / n if n and t.get("epochs_machine_j") is not None else None),
                         fmt_num(t["gpu_j"] / n if n and t.get("gpu_j") is not None else None),
                         fmt_num(t.get("energy_j")), fmt_num(t.get("energy_to_target_j")),
                         fmt_num(t.get("best_val_metric")), fmt_num(t.get("duration_s")), t.get("method") or "-"))
        return md_table(["batch", "lr", "seed", "status", "epochs", "J/epoch", "machine J/epoch", "GPU J/epoch",
                         "energy J",
                         "energy to target J", "best val metric", "time s", "method"], rows)

    @staticmethod
    def per_batch(trials):
        """{batch: (mean J/epoch, mean GPU J/epoch)} over every run with epochs."""
        acc = {}
        for t in trials:
            n = t.get("epochs_stored") or 0
            if not n or t.get("epochs_j") is None:
                continue
            a = acc.setdefault(t["batch_size"], ([], []))
            a[0].append(t["epochs_j"] / n)
            if t.get("gpu_j") is not None:
                a[1].append(t["gpu_j"] / n)
        return {b: (statistics.mean(v[0]), statistics.mean(v[1]) if v[1] else None) for b, v in sorted(acc.items())}

    @staticmethod
    def batch_answer(per_batch, which=0):
        pts = [(b, v[which]) for b, v in per_batch.items() if v[which] is not None]
        if len(pts) < 2:
            return "not answered (fewer than two batch sizes measured)"
        falling = all(b2[1] < b1[1] for b1, b2 in zip(pts, pts[1:]))
        figures = ", ".join(f"batch {b}: {fmt_num(v)} J" for b, v in pts)
        return ("yes, it falls with every larger batch" if falling else
                "no, not at every step" if pts[-1][1] < pts[0][1] else "no") + f" ({figures} per epoch)"

    def study_step(self, example, name, changes, intro, allow_timeout=False, timeout=None):
        if not self.powertrain:
            raise StepSkipped("no powertrain binary (the build step failed)")
        spec_path, spec = self.study_spec(example, name, changes)
        r = self.run_study(spec_path, timeout=timeout)
        if r.rc != 0 and not (allow_timeout and r.timed_out):
            raise StepFailed(f"powertrain sweep: {'timed out' if r.timed_out else f'exit {r.rc}'}: {one_line(r.out)}")
        trials = self.study_rows(name) if self.db.exists() else []
        pb = self.per_batch(trials)
        ans = self.batch_answer(pb)
        ans_gpu = self.batch_answer(pb, 1)
        data = spec["workload"].get("data_dir") or spec["workload"].get("dataset")
        md = [intro, "", f"Spec: `{example}` with {json.dumps(changes)}"
              + (" (dry run: 64 images, batch 16 and 64, lr 0.01, 1 epoch)" if self.dry else "")
              + f"; data: `{data}`.",
              "", f"    powertrain sweep {spec_path.name} --db gpu-check.db", "",
              self.study_table(trials), "",
              f"Does a larger batch cost less energy per epoch? All channels: {ans}. GPU alone: {ans_gpu}."]
        if r.timed_out:
            md += ["", f"Stopped at its time box after {r.seconds:.0f} s: the unfinished trial keeps the epochs it "
                       "finished."]
        done = sum(1 for t in trials if t.get("status") not in ("pending", "running", None))
        fig = {"spec": spec, "trials": trials, "per_batch": {str(k): v for k, v in pb.items()},
               "larger_batch_less_energy_per_epoch": ans, "gpu_only": ans_gpu, "timed_out": r.timed_out}
        return {"md": "\n".join(md), "figures": fig,
                "note": f"{done} of {len(spec_trials(spec))} trials finished; {ans.split(' (')[0]}"}

    def step_grid_quick(self):
        res = self.study_step("grid-quick.toml", "grid-quick-cuda",
                              {"training.device": self.device},
                              "The quick grid (4 batch sizes x 4 learning rates, 1000 Fashion-MNIST images, at "
                              f"most 8 epochs) with `device = \"{self.device}\"`.")
        res["title"] = "Quick grid on the GPU"
        return res

    def step_batch_sweep(self):
        res = self.study_step("grid-full.toml", "grid-full-batches",
                              {"training.device": self.device, "training.max_epochs": 2, "repeats": None,
                               "seeds": [0], "grid.learning_rates": [0.01], "execution.cooldown_s": 0,
                               "execution.warmup_s": 5},
                              "Energy per epoch by batch size on the whole of Fashion-MNIST (the full grid's "
                              "data and model), one learning rate, 2 epochs each, 5 s of warm-up before each trial.")
        res["title"] = "Energy per epoch by batch size, full Fashion-MNIST"
        return res

    def step_grid_full(self):
        import tomllib
        grid = tomllib.loads((ROOT / "examples" / "grid-full.toml").read_text()).get("grid", {})
        res = self.study_step("grid-full.toml", "grid-full-cuda",
                              {"training.device": self.device, "execution.cooldown_s": 5, "execution.warmup_s": 10,
                               "grid.batch_sizes": sorted(grid.get("batch_sizes", []), reverse=True),
                               "grid.learning_rates": sorted(grid.get("learning_rates", []), reverse=True)},
                              "The full grid (examples/grid-full.toml: 4 x 4 setups x 3 seeds, each to convergence) "
                              "for as long as the budget allows: cool-down and warm-up cut to 5 s and 10 s, and "
                              "the largest batch and learning rate first (the setups that converge soonest), so "
                              "that as many trials as possible finish.",
                              allow_timeout=True, timeout=max(5.0, self.budget_left() - 15))
        res["title"] = "Full grid, as far as the time allowed"
        return res

    # --- the example script under powertrain train ---------------------------------------
    def step_example(self):
        fm = self.fashion_dir()
        if not fm:
            raise StepFailed("no Fashion-MNIST (give --data-dir, or carry it: scripts/gpu-check --prepare-carry)")
        samples = 64 if self.dry else 10000
        epochs = 1 if self.dry else 3
        db_before = None
        cmd = self.pt("train", "--batch-size", 64, "--lr", 0.01, "--max-epochs", epochs, "--device", self.device,
                      "--threads", 1 if self.dry else 0, "--db", self.db, "--quiet",
                      "--workdir", ROOT / "examples" / "fashion-mnist-pytorch", "--",
                      self.python, "train.py", "--batch-size", "{batch_size}", "--lr", "{learning_rate}",
                      "--max-epochs", "{max_epochs}", "--device", "{device}", "--seed", "{seed}",
                      "--threads", "{threads}", "--max-samples", samples, "--data-dir", fm)
        if self.db.exists():
            db_before = self.max_run_id()
        r = self.must(cmd, "powertrain train -- train.py", timeout=120 if self.dry else 90)
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        con.row_factory = sqlite3.Row
        try:
            run = con.execute("SELECT * FROM runs WHERE id > ? ORDER BY id DESC LIMIT 1",
                              (db_before or 0,)).fetchone()
            if run is None:
                raise StepFailed("powertrain train stored no run")
            run = dict(run)
            epochs_rows = [dict(e) for e in con.execute("SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch",
                                                        (run["id"],))]
            chans = [dict(c) for c in con.execute(
                "SELECT channel_id, component, method, in_total, SUM(energy_j) AS energy_j FROM epoch_channels "
                "WHERE run_id = ? GROUP BY channel_id ORDER BY MIN(ord)", (run["id"],))]
        finally:
            con.close()
        rows = [(e["epoch"], fmt_num(e.get("duration_s")), fmt_num(e.get("energy_j")), fmt_num(e.get("train_energy_j")),
                 fmt_num(e.get("eval_energy_j")), fmt_num(e.get("val_metric")), fmt_num(e.get("samples_per_s")),
                 e.get("method")) for e in epochs_rows]
        md = [f"`examples/fashion-mnist-pytorch/train.py` ({samples} images per split, batch 64, lr 0.01, "
              f"{epochs} epoch{'s' if epochs > 1 else ''}, `--device {self.device}`) as the program of "
              "`powertrain train --`:", "",
              "    " + shlex.join(str(c) for c in cmd).replace(str(self.db), "gpu-check.db"), "",
              md_table(["epoch", "s", "J", "train J", "eval J", "val metric", "samples/s", "method"], rows), "",
              f"Run: status {run.get('status')}, test metric {fmt_num(run.get('test_metric'))}, "
              f"{fmt_num(run.get('energy_j'))} J in {fmt_num(run.get('duration_s'))} s ({run.get('method')}).", "",
              "Channels over the run (in_total 0: reported apart, not charged):", "",
              md_table(["channel", "component", "method", "in_total", "J"],
                       [(c["channel_id"], c["component"], c["method"], c["in_total"], fmt_num(c["energy_j"]))
                        for c in chans])]
        return {"md": "\n".join(md), "title": "The example PyTorch script under powertrain train",
                "figures": {"run": run, "epochs": epochs_rows, "channels": chans},
                "note": f"{run.get('status')}, {fmt_num(run.get('energy_j'))} J, test {fmt_num(run.get('test_metric'))}"}

    def max_run_id(self):
        try:
            con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
            try:
                return con.execute("SELECT MAX(id) FROM runs").fetchone()[0]
            finally:
                con.close()
        except sqlite3.Error:
            return None

    # --- the race -----------------------------------------------------------------------
    def step_race(self):
        if not self.bench:
            raise StepSkipped("bench_train is not built here" if self.dry else "no bench_train (build failed or "
                                                                              "built without benchmarks)")
        if self.dry:
            args = ["--device", "cpu", "--workloads", "image", "--batches", "4", "--repeats", 1, "--seconds", 0.05,
                    "--modes", "tuned", "--threads", 1]
        else:
            args = ["--device", self.device, "--workloads", self.a.race_workloads, "--batches", self.a.race_batches,
                    "--repeats", 1, "--seconds", 1, "--modes", "tuned"]
        cmd = [self.bench, *args, "--python", self.python]
        r = self.run(cmd)
        lines = r.out.splitlines()
        first = next((k for k, ln in enumerate(lines) if ln.startswith("# ")), len(lines))
        table = [ln for ln in lines[first:] if not ln.startswith("$ ")]
        md = ["    " + shlex.join(str(c) for c in cmd).replace(str(self.build_dir) + "/", ""), "",
              "Both sides train the same models on random data held on the device, the engine as `powertrain "
              "train` runs it, Python in its tuned form (written for the CPU: channels-last, one gather per "
              "epoch, fused SGD; not re-tuned for the GPU), one trial each per batch size.", ""]
        md += [ln.replace("# ", "#### ", 1) if ln.startswith("# ") else
               ln.replace("## ", "#### ", 1) if ln.startswith("## ") else ln for ln in table]
        rows = sum(1 for ln in table if re.match(r"\| \d", ln))
        if r.timed_out:
            md += ["", f"Stopped at its time box after {r.seconds:.0f} s; the rows above finished."]
            return {"md": "\n".join(md), "title": "The engine against tuned Python PyTorch on the GPU",
                    "figures": {"output": r.out[-20000:]}, "note": f"{rows} batch sizes before the time box"}
        if r.rc != 0:
            raise StepFailed(f"bench_train: exit {r.rc}: {one_line(r.out)}")
        return {"md": "\n".join(md), "title": "The engine against tuned Python PyTorch on the GPU",
                "figures": {"output": r.out[-20000:]}, "note": f"{rows} batch sizes"}


def spec_trials(spec):
    g = spec.get("grid", {})
    seeds = spec.get("seeds") or list(range(spec.get("repeats", 1)))
    return [(s, b, lr) for s in seeds for b in g.get("batch_sizes", []) for lr in g.get("learning_rates", [])]


def toml_key(k):
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def to_toml(d, prefix=""):
    """A TOML document of nested tables holding strings, numbers, booleans and arrays of them."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{toml_key(k)} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(f"no TOML for {type(v).__name__}")
    plain = [f"{toml_key(k)} = {value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    tables = [(k, v) for k, v in d.items() if isinstance(v, dict)]
    out = ([f"[{prefix}]"] if prefix and plain else []) + plain
    for k, v in tables:
        sub = f"{prefix}.{toml_key(k)}" if prefix else toml_key(k)
        out.append(to_toml(v, sub))
    return "\n".join(x for x in out if x) + "\n"


# --- carrying what a GPU machine lacks ------------------------------------------------

# Debian packages of the build's libraries (scripts/setup's list, less what the
# GPU machine has: compilers, CMake, ninja, Python, CUDA), unpacked there into a
# private prefix by --deps. Tests are not built there, so no GoogleTest.
CARRY_DEBS = ["libcli11-dev", "nlohmann-json3-dev", "libtomlplusplus-dev", "libtomlplusplus3", "libfmt-dev",
              "libfmt9", "libsqlite3-dev", "libsqlite3-0", "zlib1g-dev", "zlib1g", "libturbojpeg0-dev", "libturbojpeg0",
              "libbenchmark-dev", "libbenchmark1debian", "pkgconf", "pkgconf-bin", "libpkgconf3"]


def prepare_carry(folder):
    """Here (Debian bookworm, with network): Fashion-MNIST and the .deb files
    of the build's libraries into FOLDER, which a device run carries."""
    folder = Path(folder).resolve()
    (folder / "deps").mkdir(parents=True, exist_ok=True)
    fm_src = Path(os.environ.get("POWERTRAIN_DATA_DIR", "/usr/share/datasets")) / "fashion-mnist"
    fm = folder / "fashion-mnist"
    fm.mkdir(exist_ok=True)
    for f in sorted(fm_src.glob("*-ubyte.gz")):
        shutil.copy2(f, fm / f.name)
    subprocess.run(["apt-get", "download", *CARRY_DEBS], cwd=folder / "deps", check=True)
    for deb in (folder / "deps").glob("*.deb"):  # plain file names ('%3a' of epochs, '+' of versions)
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", deb.name)
        if safe != deb.name:
            deb.rename(deb.with_name(safe))
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"gpu-check: {folder}: {len(list(fm.iterdir()))} Fashion-MNIST files, "
          f"{len(list((folder / 'deps').glob('*.deb')))} .deb files, {size / 2**20:.1f} MiB")
    print(f"on the GPU machine: scripts/gpu-check --deps {folder.name}/deps --data-dir {folder.name}/fashion-mnist")


# --- main -----------------------------------------------------------------------------

def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("describe", "load", "queued"):
        p = argparse.ArgumentParser(prog=f"gpu_check.py {argv[0]}")
        p.add_argument("--device", default="cuda")
        if argv[0] == "load":
            p.add_argument("--kind", choices=["steady", "bursty"], default="steady")
            p.add_argument("--seconds", type=float, default=10.0)
            p.add_argument("--size", type=int, default=0)
            p.add_argument("--threads", type=int, default=0)
        if argv[0] == "queued":
            p.add_argument("--work-s", type=float, default=2.0)
            p.add_argument("--gap-s", type=float, default=1.0)
            p.add_argument("--size", type=int, default=0)
            p.add_argument("--nvml-library")
        a = p.parse_args(argv[1:])
        {"describe": cmd_describe, "load": cmd_load, "queued": cmd_queued}[argv[0]](a)
        return 0

    p = argparse.ArgumentParser(prog="gpu-check", description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="the same steps on the CPU with tiny sizes (CI)")
    p.add_argument("--out", help="folder of the report (default: $OUT, else gpu-check-out)")
    p.add_argument("--build-dir", help="the build folder (default: build-gpu-check); the documented build "
                                       "runs there, incrementally, unless --no-build or --dry-run")
    p.add_argument("--build-targets", default="powertrain powertrain-train bench_train",
                   help="what the build step builds "
                   "(then the Python module, if it can)")
    p.add_argument("--no-build", action="store_true", help="use --build-dir as it is (a carried build that "
                                                           "runs on this PyTorch)")
    p.add_argument("--python", help="the Python with torch (default: $POWERTRAIN_PYTHON, the build's, the "
                                     "project's environment, python3)")
    p.add_argument("--deps", help="a folder of .deb files of the build's libraries to unpack privately "
                                  "(default: .gpu-carry/deps where it exists, except in a dry run)")
    p.add_argument("--data-dir", help="Fashion-MNIST's folder (default: .gpu-carry/fashion-mnist, "
                                      "/usr/share/datasets/fashion-mnist)")
    p.add_argument("--nvml-library", help="NVML library to read (default: $POWERTRAIN_NVML_LIBRARY, the driver's)")
    p.add_argument("--budget", type=float, help="seconds for the whole check (default 450; dry run 900)")
    p.add_argument("--measure-s", type=float, default=15.0, help="seconds of the measured steady load")
    p.add_argument("--window-load-s", type=float, default=21.0, help="seconds of each load of the windows step")
    p.add_argument("--race-batches", default="1,4,16,64,256,1024")
    p.add_argument("--race-workloads", default="image,sensor")
    p.add_argument("--only", type=lambda s: s.split(","),
                   help="run only these steps (comma-separated); env and build always run")
    p.add_argument("--skip", type=lambda s: s.split(","), help="skip these steps (not env or build)")
    p.add_argument("--timebox", action="append", help="STEP=SECONDS: another time box for a step")
    p.add_argument("--inject", action="append", help=argparse.SUPPRESS)  # STEP=fail|hang, for the tests
    p.add_argument("--prepare-carry", metavar="FOLDER", help="here: put Fashion-MNIST and the .deb files of the "
                                                            "build's libraries into FOLDER, and exit")
    a = p.parse_args(argv)
    a.argv = argv
    if a.prepare_carry:
        prepare_carry(a.prepare_carry)
        return 0
    if a.budget is None:
        a.budget = 900.0 if a.dry_run else 450.0
    carried = ROOT / ".gpu-carry" / "deps"
    if a.deps is None and not a.dry_run and carried.is_dir():
        a.deps = str(carried)
    ck = Check(a)
    ck.say(f"gpu-check: report in {ck.md_path}; budget {a.budget:.0f} s")
    steps = [("env", 60, ck.step_env), ("build", 300, ck.step_build), ("version", 30, ck.step_version),
             ("measure", 90, ck.step_measure), ("windows", 100, ck.step_windows), ("queued", 60, ck.step_queued),
             ("attribution", 60, ck.step_attribution), ("grid-quick", 120, ck.step_grid_quick),
             ("example", 120, ck.step_example), ("race", 110, ck.step_race),
             ("batch-sweep", 90, ck.step_batch_sweep), ("grid-full", None, ck.step_grid_full)]
    known = {s[0] for s in steps}
    for bad in [s for s in (a.only or []) + (a.skip or []) if s not in known]:
        p.error(f"unknown step '{bad}' (steps: {', '.join(s[0] for s in steps)})")
    for name, nominal, fn in steps:
        ck.step(name, nominal, fn)
    ck.write()
    failed = [n for n, s, _, _ in ck.results if s == "failed"]
    ck.say(f"\ngpu-check: {len(ck.results)} steps, {len(failed)} failed{': ' + ', '.join(failed) if failed else ''}; "
           f"report: {ck.md_path}")
    shutil.rmtree(ck.work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
