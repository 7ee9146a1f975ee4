"""What the framework callbacks share: the best model in memory, directories
written whole or not at all, the standalone energy log, and the decision
shared with the other processes of a distributed run."""
from __future__ import annotations

import os
import shutil
import sys
from typing import Any, Callable, Dict, Optional

from .. import _client
from .._config import config
from .._resume import _cpu_copy, _fsync_dir


def resume_path() -> Optional[str]:
    """The state a continued segment goes on from (POWERTRAIN_RESUME_FROM), else None."""
    return config().resume_from


def at_limit(number: int) -> bool:
    """True when `number` is the run's last epoch (POWERTRAIN_MAX_EPOCHS) and
    powertrain asked for the state (POWERTRAIN_SAVE_STATE)."""
    c = config()
    return bool(c.save_state) and c.max_epochs is not None and number >= c.max_epochs


def write_dir_atomically(path: str, fill: Callable[[str], None]) -> None:
    """fill(tmp) writes a folder's files into tmp beside `path`; they are
    flushed to disk and the folder renamed to `path` (an older one is replaced),
    so that a kill leaves the whole folder or none at all."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        fill(tmp)
        for root, _, files in os.walk(tmp):
            for name in files:
                fd = os.open(os.path.join(root, name), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            _fsync_dir(root)
        old = None
        if os.path.lexists(path):
            old = f"{path}.old-{os.getpid()}"
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True) if os.path.isdir(old) else os.unlink(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class BestModel:
    """The best epoch's weights, in memory (on the CPU)."""

    def __init__(self) -> None:
        self.epoch = 0
        self.metric: Optional[float] = None
        self.state: Optional[Dict[str, Any]] = None

    def keep(self, epoch: int, metric: float, model: Any) -> None:
        self.epoch, self.metric = epoch, metric
        self.state = _cpu_copy(model.state_dict())

    def restore(self, model: Any) -> bool:
        if self.state is None or model is None:
            return False
        model.load_state_dict(self.state)
        return True

    def as_dict(self) -> Dict[str, Any]:
        return {"epoch": self.epoch, "metric": self.metric, "model": self.state}

    def load(self, saved: Optional[Dict[str, Any]]) -> None:
        if not saved:
            return
        self.epoch = int(saved.get("epoch") or 0)
        self.metric = saved.get("metric")
        self.state = saved.get("model")
        if self.metric is not None:
            with _client._session.lock:  # the local best, for runs outside powertrain
                _client._session.best_metric = self.metric


class EnergyLog:
    """Standalone: one powertrain.Meter window per epoch. Where the native
    module is missing it says so once and measures nothing."""

    def __init__(self, interval_ms: int = 100) -> None:
        self.meter: Any = None
        self.open: Optional[str] = None
        try:
            from .._meter import Meter
            self.meter = Meter(interval_ms=interval_ms)
        except ImportError as e:
            sys.stderr.write(f"powertrain: epochs are not measured: {e}\n")

    def begin(self, epoch: int) -> None:
        if self.meter is None:
            return
        if self.open is not None:
            self.meter.end(self.open)
        self.open = f"epoch-{epoch}"
        self.meter.begin(self.open)

    def end(self) -> Optional[Dict[str, float]]:
        """The open epoch's figures as metrics to log (None: nothing measured)."""
        if self.meter is None or self.open is None:
            return None
        r = self.meter.end(self.open)
        self.open = None
        return {"energy/epoch_j": float(r.energy_j), "energy/epoch_s": float(r.duration_s),
                "energy/avg_power_w": float(r.avg_power_w), "energy/estimated": float(bool(r.estimated))}

    def close(self) -> None:
        if self.meter is not None:
            if self.open is not None:
                self.meter.end(self.open)
                self.open = None
            self.meter.close()
