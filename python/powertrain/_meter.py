"""Standalone energy measurement through the native module powertrain._native."""
from __future__ import annotations

import importlib

from types import ModuleType, TracebackType
from typing import Any, Dict, List, Optional, Sequence, Type

# The energy layer's range for the sampling interval (energy::TrackerOptions).
MIN_INTERVAL_MS = 10
MAX_INTERVAL_MS = 60000


class NativeModuleMissing(ImportError):
    """powertrain.Meter was used where the native module is not built."""


def _load_native() -> ModuleType:
    try:
        native = importlib.import_module(__package__ + "._native")
    except ImportError as e:
        raise NativeModuleMissing(
            f"powertrain.Meter needs the native module powertrain._native, which is not available here ({e}); "
            "build it (scripts/build, target powertrain_native) or pip install the repository; "
            "the protocol client works without it") from None
    return native


class Window:
    """A measurement window as a context manager; its result is in .result
    after the block (also when the block raised)."""

    def __init__(self, meter: "Meter", name: str) -> None:
        self.meter = meter
        self.name = name
        self.result: Any = None  # powertrain._native.WindowResult after the block

    def __enter__(self) -> "Window":
        self.meter.begin(self.name)
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.result = self.meter.end(self.name)


class Meter:
    """Measures the energy of code regions with powertrain's meters (NVML,
    RAPL, perf, board rails, or the labeled estimate where none exists)::

        with powertrain.Meter() as meter:
            with meter.window("train") as w:
                train()
            print(w.result.energy_j, w.result.method, w.result.estimated)

    interval_ms: sampling interval (10 to 60000). disabled: source names to
    skip ("nvml", "rapl", "perf", "rails", "estimate"). estimate_scope:
    "system" (the whole machine, default) or "process" (this process and its
    children). Windows may nest and overlap; names must be unique among open
    windows. On a GPU, synchronize the device before a window ends (e.g.
    torch.cuda.synchronize()) so that queued work lands in it.
    Raises NativeModuleMissing (an ImportError) where the native module is
    not built."""

    def __init__(self, interval_ms: int = 100, disabled: Sequence[str] = (),
                 estimate_scope: str = "system") -> None:
        interval = int(interval_ms)
        # Checked here too: past a C int the native module's own check would
        # never be reached (pybind11 refuses the argument with a TypeError).
        if not MIN_INTERVAL_MS <= interval <= MAX_INTERVAL_MS:
            raise ValueError(f"sampling interval {interval} ms is out of range "
                             f"({MIN_INTERVAL_MS} ms to {MAX_INTERVAL_MS} ms)")
        native = _load_native()
        if isinstance(disabled, str):
            disabled = [disabled]
        self._meter = native.Meter(interval, list(disabled), estimate_scope)

    def sources(self) -> List[Dict[str, Any]]:
        """Every source probed: source, available, reason, fix, description, channels."""
        return self._meter.sources()

    def begin(self, name: str) -> None:
        """Opens the window `name`."""
        self._meter.begin(name)

    def end(self, name: str) -> Any:
        """Closes the window `name` and returns its WindowResult."""
        return self._meter.end(name)

    def window(self, name: str) -> Window:
        """The window `name` as a context manager: ``with meter.window("x") as w``."""
        return Window(self, name)

    @property
    def closed(self) -> bool:
        return bool(self._meter.closed)

    def close(self) -> None:
        """Stops the sampler. Idempotent; also done on exit of a with block and on deletion."""
        self._meter.close()

    def __enter__(self) -> "Meter":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()
