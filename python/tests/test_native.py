"""The native module's Meter: windows on the estimate path, errors as Python
exceptions. Skipped where powertrain._native is not built."""
from __future__ import annotations

import sys
import time

import pytest

import powertrain as pt

try:
    import powertrain._native as native
except ImportError:  # depends on the build
    native = None
needs_native = pytest.mark.skipif(native is None, reason="powertrain._native is not built"
                                  " (scripts/build, target powertrain_native)")

MEASURED = ["nvml", "rapl", "perf", "rails"]


def busy(seconds: float) -> int:
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def test_without_the_native_module_meter_explains_in_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "powertrain._native", None)  # import fails
    with pytest.raises(pt.NativeModuleMissing) as caught:
        pt.Meter()
    assert isinstance(caught.value, ImportError)
    message = str(caught.value)
    assert "\n" not in message and "powertrain._native" in message
    assert pt.report(0.5).best  # the protocol client is unaffected


@needs_native
def test_sources_list_every_source():
    with pt.Meter() as meter:
        sources = meter.sources()
    assert [s["source"] for s in sources] == MEASURED + ["estimate"]
    for s in sources:
        assert set(s) == {"source", "available", "reason", "fix", "description", "channels"}
        assert s["available"] == bool(s["channels"])
        assert s["available"] or s["reason"]


@needs_native
def test_estimate_path_is_labeled_honestly():
    with pt.Meter(interval_ms=20, disabled=MEASURED) as meter:
        with meter.window("busy") as w:
            busy(0.3)
    r = w.result
    assert r.name == "busy"
    assert r.energy_j > 0 and r.avg_power_w > 0 and r.peak_power_w > 0
    assert r.duration_s >= 0.3
    assert r.estimated and r.method.startswith("estimated, attributed by CPU-time share")
    # This process's own share beside what the estimate says the machine drew.
    assert r.attribution.startswith("attributed by CPU-time share")
    assert 0 < r.energy_j <= r.machine_energy_j + 1e-9
    assert all(c["energy_j"] <= c["machine_energy_j"] + 1e-9 for c in r.channels)
    assert {c["component"] for c in r.components} == {"cpu", "dram"}
    assert all(c["method"] == "estimated" for c in r.components)
    assert r.energy_j == pytest.approx(sum(c["energy_j"] for c in r.channels if c["in_total"]))
    assert r.energy_j_of("cpu") > 0 and r.energy_j_of("gpu") == 0
    assert "estimated" in repr(r)


@needs_native
def test_default_meter_says_whether_it_estimated():
    with pt.Meter() as meter:
        measured = any(s["available"] for s in meter.sources() if s["source"] != "estimate")
        with meter.window("busy") as w:
            busy(0.2)
    r = w.result
    assert r.energy_j > 0
    assert r.estimated == any(c["in_total"] and c["method"] == "estimated" for c in r.channels)
    if not measured:  # a VM or container, like the CI machine
        assert r.estimated and "estimated" in r.method


@needs_native
def test_windows_nest_and_overlap():
    with pt.Meter(interval_ms=20) as meter:
        meter.begin("outer")
        meter.begin("a")
        busy(0.1)
        meter.begin("b")
        busy(0.1)
        a = meter.end("a")
        busy(0.1)
        b = meter.end("b")
        outer = meter.end("outer")
    assert outer.duration_s >= a.duration_s and outer.duration_s >= b.duration_s
    assert outer.energy_j >= a.energy_j and outer.energy_j >= b.energy_j


@needs_native
def test_window_errors_are_one_line_exceptions():
    with pt.Meter() as meter:
        with pytest.raises(ValueError, match="measurement window 'nope' is not open"):
            meter.end("nope")
        meter.begin("x")
        with pytest.raises(ValueError, match="measurement window 'x' is already open") as caught:
            meter.begin("x")
        assert "\n" not in str(caught.value)
        meter.end("x")
        with pytest.raises(KeyError):  # the block's own exception passes, the window still ends
            with meter.window("y") as w:
                raise KeyError("boom")
        assert w.result is not None and w.result.name == "y"


@needs_native
def test_bad_options_are_value_errors():
    with pytest.raises(ValueError, match="sampling interval 1 ms is out of range"):
        pt.Meter(interval_ms=1)
    with pytest.raises(ValueError, match="unknown energy source 'gpu'"):
        pt.Meter(disabled=["gpu"])
    with pytest.raises(ValueError, match="estimate_scope"):
        pt.Meter(estimate_scope="galaxy")
    with pytest.raises(ValueError, match="no energy source is available"):
        pt.Meter(disabled=MEASURED + ["estimate"])


@needs_native
def test_closed_meter_refuses_windows():
    meter = pt.Meter(estimate_scope="process")
    with meter:
        assert not meter.closed
    assert meter.closed
    meter.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        meter.begin("late")
    native_meter = native.Meter()
    del native_meter  # destruction stops the sampler (no hang, no crash)


def test_an_interval_past_a_c_int_is_the_range_error():
    # Issue 24: Meter(interval_ms=10**12) raised pybind11's argument TypeError.
    for interval in (10**12, -(10**12), 5):
        with pytest.raises(ValueError, match=f"sampling interval {interval} ms is out of range"):
            pt.Meter(interval_ms=interval)
