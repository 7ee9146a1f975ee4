"""powertrain.resume(): one call that makes a PyTorch training script continuable.

A search trains a setup in segments (docs/search.md): a segment that stops at
its epoch limit is paused, and a later segment continues it. powertrain knows
the epochs, the program keeps its own state. resume() does that for a script:

    state = pt.resume(model=model, optimizer=optimizer, scheduler=scheduler)
    for epoch in pt.epochs():            # from the run's start epoch
        ...
        pt.report(val_metric=acc)        # also keeps the best model, and saves the
                                         # state when the segment stops at its limit
    state.restore_best()                 # the best model of the whole run
    pt.test(metric=evaluate(model))

When the run continues a paused one (POWERTRAIN_RESUME_FROM), resume() loads
its state at once: the weights, the optimizer's and the scheduler's state, the
random generators of torch (CPU and CUDA), numpy and Python's random module,
any torch.Generator given, the best model so far, the local best metric and the
epoch, which must be the one before POWERTRAIN_START_EPOCH. When the reply to
an epoch says stop after the run's last epoch (POWERTRAIN_MAX_EPOCHS) and
POWERTRAIN_SAVE_STATE is set, it writes the same state there: to a temporary
file in the same folder, flushed to disk (fsync), then renamed over the path,
so that a kill leaves either the whole state or none.

Outside powertrain the same call does nothing unless given paths of its own
(resume_from=, save_state=); save() writes the state on demand.
"""
from __future__ import annotations

import os
import random
import sys
from typing import Any, Dict, List, Optional, Sequence

from . import _client
from ._config import config

#: What a state file says it is, and the version of its layout.
FORMAT = "powertrain-resume"
VERSION = 1


def _torch() -> Any:
    try:
        import torch
    except ImportError:  # pragma: no cover - the package itself does not need torch
        raise RuntimeError("powertrain.resume() needs PyTorch (import torch failed)") from None
    return torch


def _cpu_copy(state: Dict[str, Any]) -> Dict[str, Any]:
    """A state_dict's tensors copied to the CPU (the best model, kept in memory)."""
    out = {}
    for key, value in state.items():
        detach = getattr(value, "detach", None)
        out[key] = detach().to("cpu", copy=True) if callable(detach) else value
    return out


def _numpy_state() -> Optional[Dict[str, Any]]:
    numpy = sys.modules.get("numpy")  # saved only where the program uses numpy
    if numpy is None:
        return None
    torch = _torch()
    st = numpy.random.get_state(legacy=False)
    # As plain numbers and a tensor, so that torch.load(weights_only=True) reads it.
    return {"bit_generator": str(st["bit_generator"]),
            "key": torch.from_numpy(numpy.asarray(st["state"]["key"]).astype("int64")),
            "pos": int(st["state"]["pos"]), "has_gauss": int(st["has_gauss"]), "gauss": float(st["gauss"])}


def _set_numpy_state(saved: Optional[Dict[str, Any]]) -> None:
    if saved is None:
        return
    import numpy
    numpy.random.set_state({"bit_generator": saved["bit_generator"],
                            "state": {"key": saved["key"].numpy().astype(numpy.uint32), "pos": saved["pos"]},
                            "has_gauss": saved["has_gauss"], "gauss": saved["gauss"]})


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomically(path: str, write: Any) -> None:
    """Calls write(file) on a temporary file beside `path`, flushes it to disk
    and renames it over `path`: a kill at any point leaves the old file or the
    new one, never half of one."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)


class Resumable:
    """What powertrain.resume() returns: the run's continuable state.

    start_epoch: the first epoch this run trains (1, or the epoch after the
    loaded state's). resumed: a state was loaded. best_epoch / best_metric:
    the best epoch of the whole run so far (0 / None: none yet). extra: the
    dictionary given as extra=, updated in place from the loaded state."""

    def __init__(self, model: Any = None, optimizer: Any = None, scheduler: Any = None,
                 extra: Optional[Dict[str, Any]] = None, generators: Sequence[Any] = (),
                 save_state: Optional[str] = None, max_epochs: Optional[int] = None) -> None:
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.extra: Dict[str, Any] = extra if extra is not None else {}
        self.generators: List[Any] = list(generators)
        self.save_path = save_state
        self.max_epochs = max_epochs
        self.start_epoch = 1
        self.resumed = False
        self.epoch = 0                    # last epoch reported (or loaded)
        self.best_epoch = 0
        self.best_metric: Optional[float] = None
        self.best_state: Optional[Dict[str, Any]] = None
        self.saved_to: Optional[str] = None  # where the state was last written

    # -- the state --------------------------------------------------------

    def state(self) -> Dict[str, Any]:
        """Everything the next epochs depend on, as one dictionary for torch.save."""
        torch = _torch()
        rng: Dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": _numpy_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "format": FORMAT, "version": VERSION, "epoch": self.epoch,
            "model": self.model.state_dict() if self.model is not None else None,
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": rng, "generators": [g.get_state() for g in self.generators],
            "best": {"epoch": self.best_epoch, "metric": self.best_metric, "model": self.best_state},
            "extra": self.extra,
        }

    def save(self, path: Optional[str] = None) -> str:
        """Writes the state atomically to `path` (default: POWERTRAIN_SAVE_STATE
        or save_state=) and returns the path."""
        target = path or self.save_path
        if not target:
            raise ValueError("powertrain.resume: no path to save the state to (POWERTRAIN_SAVE_STATE is not set)")
        torch = _torch()
        state = self.state()
        write_atomically(target, lambda f: torch.save(state, f))
        self.saved_to = target
        return target

    def load(self, path: str, expected_epoch: Optional[int] = None) -> None:
        """Loads a state that save() wrote into the model, optimizer, scheduler,
        generators and extra given to resume()."""
        torch = _torch()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise RuntimeError(f"powertrain.resume: the state to continue from ({path}) does not exist") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise RuntimeError(f"powertrain.resume: {path} is not a state written by powertrain.resume()")
        if state.get("version") != VERSION:
            raise RuntimeError(f"powertrain.resume: {path} has layout version {state.get('version')}, "
                               f"this package reads version {VERSION}")
        epoch = int(state["epoch"])
        if expected_epoch is not None and epoch != expected_epoch:
            raise RuntimeError(f"powertrain.resume: {path} holds the state after epoch {epoch}, but this run "
                               f"continues after epoch {expected_epoch} (POWERTRAIN_START_EPOCH={expected_epoch + 1})")
        for name, obj in (("model", self.model), ("optimizer", self.optimizer), ("scheduler", self.scheduler)):
            if obj is None:
                continue
            if state.get(name) is None:
                raise RuntimeError(f"powertrain.resume: {path} holds no {name} state, but a {name} was given")
            obj.load_state_dict(state[name])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        random.setstate(rng["python"])
        _set_numpy_state(rng.get("numpy"))
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        saved_generators = state.get("generators") or []
        if len(saved_generators) != len(self.generators):
            raise RuntimeError(f"powertrain.resume: {path} holds {len(saved_generators)} generators, "
                               f"{len(self.generators)} were given")
        for g, st in zip(self.generators, saved_generators):
            g.set_state(st)
        best = state.get("best") or {}
        self.best_epoch = int(best.get("epoch") or 0)
        self.best_metric = best.get("metric")
        self.best_state = best.get("model")
        self.extra.update(state.get("extra") or {})
        self.epoch = epoch
        self.start_epoch = epoch + 1
        self.resumed = True

    # -- the best model ---------------------------------------------------

    def restore_best(self) -> bool:
        """Loads the best epoch's weights of the whole run into the model;
        False (and the model as it is) when no epoch was best."""
        if self.best_state is None or self.model is None:
            return False
        self.model.load_state_dict(self.best_state)
        return True

    # -- after each report ------------------------------------------------

    def _after_report(self, number: Optional[int], metric: float, decision: "_client.Decision") -> None:
        if number is None:
            return
        self.epoch = number
        if decision.best:
            self.best_epoch = number
            self.best_metric = metric
            if self.model is not None:
                self.best_state = _cpu_copy(self.model.state_dict())
        # Paused at the segment's limit (not converged earlier): the next segment goes on from here.
        # One writer in a distributed run: global rank 0 (every rank loads what it saved).
        if (decision.stop and self.save_path and self.max_epochs is not None and number >= self.max_epochs
                and _client._session.rank.leader):
            self.save()


def resume(model: Any = None, optimizer: Any = None, scheduler: Any = None, extra: Optional[Dict[str, Any]] = None,
           generators: Sequence[Any] = (), resume_from: Optional[str] = None,
           save_state: Optional[str] = None) -> Resumable:
    """Makes the script continuable; call it once, after building the model,
    optimizer and scheduler and before the first epoch. Loads the state when
    this run continues a paused one (POWERTRAIN_RESUME_FROM, or resume_from=),
    and from then on keeps the best model after each report and writes the
    state when a report's decision stops the run at its last epoch
    (POWERTRAIN_MAX_EPOCHS) and POWERTRAIN_SAVE_STATE (or save_state=) is set.

    extra: a dictionary of your own (tensors, numbers, strings, lists, dicts)
    saved with the state and updated in place when one is loaded. generators:
    torch.Generator objects of your own (a DataLoader's) whose state matters.
    Raises RuntimeError when the state cannot be read or does not end at the
    epoch before POWERTRAIN_START_EPOCH."""
    c = config()
    s = _client._session
    r = Resumable(model, optimizer, scheduler, extra, generators,
                  save_state=save_state if save_state is not None else c.save_state, max_epochs=c.max_epochs)
    source = resume_from if resume_from is not None else c.resume_from
    if source:
        under = c.start_epoch is not None
        r.load(source, expected_epoch=c.start_epoch - 1 if under else None)
        with s.lock:
            if s.epoch is None or not under:
                s.epoch = r.epoch  # the next epoch() is the one after the state's
            if r.best_metric is not None:
                s.best_metric = r.best_metric
    else:
        r.start_epoch = _client.start_epoch()
        r.epoch = r.start_epoch - 1
    with s.lock:
        # One continuable state per process: a second call replaces the first.
        s.report_hooks = [h for h in s.report_hooks if not isinstance(getattr(h, "__self__", None), Resumable)]
        s.report_hooks.append(r._after_report)
    return r
