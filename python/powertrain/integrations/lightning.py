"""powertrain for PyTorch Lightning: a Callback.

    from powertrain.integrations.lightning import PowertrainCallback, ckpt_path
    trainer = L.Trainer(max_epochs=max_epochs, callbacks=[PowertrainCallback(monitor="val_acc")])
    trainer.fit(model, train_loader, val_loader, ckpt_path=ckpt_path())
    result = trainer.test(model, test_loader)
    pt.test(metric=result[0]["test_acc"])

Inside a study each training epoch is one powertrain epoch: its window opens
at on_train_epoch_start, switches to the eval phase when validation starts and
closes when validation ends (on_validation_end) with the monitored metric
(logged with self.log in validation_step), whose reply sets
trainer.should_stop. Validate every epoch. The best epoch's weights are kept
in memory and put back into the module when fitting ends (restore_best). Only
rank zero speaks; the decision reaches the other ranks through the strategy's
broadcast.

Continued segments: when the segment stops at its last epoch and powertrain
asked for the state (POWERTRAIN_SAVE_STATE), the callback saves a Lightning
checkpoint there at the end of the training epoch (trainer.save_checkpoint: weights, optimizers, schedulers,
loops; and this callback's state: the random generators of torch, numpy and
Python and the best model), written whole or not at all. The next segment
passes ckpt_path() to trainer.fit(), and Lightning goes on from there.

On its own (outside powertrain) it measures each epoch with powertrain.Meter
and logs energy/epoch_j, energy/epoch_s, energy/avg_power_w and
energy/estimated to every logger of the Trainer (TensorBoard, W&B, MLflow, CSV).
"""
from __future__ import annotations

import os
import random
from typing import Any, Dict, Optional

import torch
from lightning.pytorch.callbacks import Callback

from .. import _client
from .._client import Decision
from .._config import config
from .._resume import _fsync_dir, _numpy_state, _set_numpy_state
from ._common import BestModel, EnergyLog, at_limit, resume_path

__all__ = ["PowertrainCallback", "ckpt_path"]


def ckpt_path() -> Optional[str]:
    """For trainer.fit(ckpt_path=...): the checkpoint a continued segment goes
    on from (POWERTRAIN_RESUME_FROM), else None."""
    return resume_path()


class PowertrainCallback(Callback):
    """monitor: the logged validation metric to report; mode: "max" (higher is
    better) or "min" (a loss: powertrain's metric is then its negative);
    restore_best: load the best epoch's weights into the module when fitting ends."""

    def __init__(self, monitor: str = "val_acc", mode: str = "max", restore_best: bool = True) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', not {mode!r}")
        self.monitor = monitor
        self.mode = mode
        self.restore_best = restore_best
        self.best = BestModel()
        self.last: Optional[Decision] = None
        self._epoch: Optional[int] = None
        self._save_pending = False
        self._energy: Optional[EnergyLog] = None

    @property
    def state_key(self) -> str:
        return f"PowertrainCallback[{self.monitor}]"

    # -- the run ------------------------------------------------------------

    def on_fit_start(self, trainer, pl_module) -> None:
        if resume_path() and trainer.ckpt_path is None:
            raise RuntimeError("powertrain continues this run from a checkpoint: pass ckpt_path="
                               "powertrain.integrations.lightning.ckpt_path() to trainer.fit()")
        if trainer.is_global_zero and not _client.active():
            self._energy = EnergyLog()

    def on_fit_end(self, trainer, pl_module) -> None:
        if self._energy is not None:
            self._energy.close()
            self._energy = None
        if self.restore_best:
            self.best.restore(pl_module)

    # -- epoch boundaries ---------------------------------------------------

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        if self._epoch is not None:
            raise RuntimeError(f"epoch {self._epoch} ended without validation: powertrain needs the validation "
                               "metric of every epoch (check_val_every_n_epoch=1)")
        with _client.epoch() as number:  # open until on_validation_end reports it
            self._epoch = number
        if _client.active() and number != trainer.current_epoch + 1:
            raise RuntimeError(f"powertrain's epoch {number} is Lightning's epoch {trainer.current_epoch + 1}: "
                               "a continued run must start from its checkpoint (ckpt_path)")
        if self._energy is not None:
            self._energy.begin(number)

    def on_validation_start(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or self._epoch is None:
            return
        _client._switch_phase("eval", self._epoch)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        stop = save = False
        if trainer.is_global_zero and self._epoch is not None:
            number, self._epoch = self._epoch, None
            value = trainer.callback_metrics.get(self.monitor)
            if value is None:
                raise KeyError(f"PowertrainCallback: no logged metric {self.monitor!r} (logged: "
                               f"{', '.join(sorted(trainer.callback_metrics)) or 'none'}); "
                               "self.log it in validation_step or pass PowertrainCallback(monitor=...)")
            value = float(value)
            loss = trainer.callback_metrics.get("val_loss")
            train_loss = trainer.callback_metrics.get("train_loss")
            decision = _client.report(val_metric=value if self.mode == "max" else -value,
                                      val_loss=None if loss is None else float(loss),
                                      train_loss=None if train_loss is None else float(train_loss))
            self.last = decision
            stop = decision.stop
            if decision.best:
                self.best.keep(number, value, pl_module)
            if self._energy is not None:
                figures = self._energy.end()
                if figures:
                    for logger in trainer.loggers:
                        logger.log_metrics(figures, step=trainer.global_step)
            save = decision.stop and at_limit(number)
        stop, save = trainer.strategy.broadcast((stop, save), src=0)
        # Saved once the epoch is complete: a checkpoint taken here, before the
        # training epoch ends, makes Lightning replay the epoch's data loader
        # on resuming, which shifts the next epoch's batch order.
        self._save_pending = save
        if stop:
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._save_pending:  # every rank takes part in saving a checkpoint
            self._save_pending = False
            self._save(trainer, config().save_state)

    @staticmethod
    def _save(trainer, target: str) -> None:
        """trainer.save_checkpoint to a temporary file beside `target`, flushed
        to disk and renamed over it: the whole checkpoint or none."""
        tmp = f"{target}.tmp"
        trainer.save_checkpoint(tmp)
        if trainer.is_global_zero:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
            _fsync_dir(os.path.dirname(os.path.abspath(target)))

    # -- the callback's own state in Lightning's checkpoints ------------------

    def state_dict(self) -> Dict[str, Any]:
        rng: Dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": _numpy_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"best": self.best.as_dict(), "rng": rng}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self.best.load(state_dict.get("best"))
        rng = state_dict.get("rng") or {}
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "python" in rng:
            random.setstate(rng["python"])
        _set_numpy_state(rng.get("numpy"))
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
