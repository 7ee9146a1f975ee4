"""powertrain for Hugging Face's Trainer: a TrainerCallback.

    from powertrain.integrations.transformers import PowertrainCallback, resume_from_checkpoint
    args = TrainingArguments(..., eval_strategy="epoch", num_train_epochs=max_epochs)
    trainer = Trainer(model=model, args=args, ..., callbacks=[PowertrainCallback(metric="accuracy")])
    trainer.train(resume_from_checkpoint=resume_from_checkpoint())
    test = trainer.evaluate(test_set, metric_key_prefix="test")
    pt.test(metric=test["test_accuracy"])

Inside a study each epoch (unit="epoch", with eval_strategy="epoch") or each
evaluation (unit="eval", with eval_strategy="steps") is one powertrain epoch:
its window opens when its training starts, switches to the eval phase when the
Trainer is about to evaluate, and closes with the evaluation's metric, whose
reply sets control.should_training_stop. The best epoch's weights are kept in
memory and put back into the model when training ends (restore_best), so that
the test is of the best model. Only the main process speaks; the decision
reaches the other processes of a distributed run through torch.distributed.

Continued segments: when the segment stops at its last epoch and powertrain
asked for the state (POWERTRAIN_SAVE_STATE), the callback makes the Trainer
save a checkpoint (weights, optimizer, scheduler, random generators, trainer
state) and copies it, with the best model, to that path (a folder, written
whole or not at all). The next segment passes resume_from_checkpoint() to
trainer.train(), and the Trainer goes on from there.

On its own (outside powertrain) it measures each epoch with powertrain.Meter
and logs energy/epoch_j, energy/epoch_s, energy/avg_power_w and
energy/estimated through the Trainer's own log (so TensorBoard, W&B and
MLflow callbacks get them, and trainer.state.log_history has them).
"""
from __future__ import annotations

import math
import os
import shutil
import sys
from typing import Any, Dict, Optional

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import CallbackHandler

from .. import _client
from .._client import Decision
from .._config import config
from ._common import BestModel, EnergyLog, at_limit, resume_path, write_dir_atomically

__all__ = ["PowertrainCallback", "resume_from_checkpoint"]

#: The file, inside a saved checkpoint folder, that holds the callback's own state.
STATE_FILE = "powertrain-callback.pt"


def resume_from_checkpoint() -> Optional[str]:
    """For trainer.train(resume_from_checkpoint=...): the checkpoint a continued
    segment goes on from (POWERTRAIN_RESUME_FROM), else None."""
    return resume_path()


def _strategy(value: Any) -> str:
    return str(getattr(value, "value", value))


def _share_stop(stop: bool) -> bool:
    """The main process's stop, on every process of a distributed run."""
    if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
        flag = [stop]
        torch.distributed.broadcast_object_list(flag, src=0)
        return bool(flag[0])
    return stop


class PowertrainCallback(TrainerCallback):
    """metric: the evaluation metric to report ("accuracy" finds "eval_accuracy");
    higher_is_better: False for a loss (powertrain's metric is then its
    negative); unit: "epoch" or "eval" (each evaluation is an epoch);
    restore_best: load the best epoch's weights into the model when training ends."""

    def __init__(self, metric: str = "accuracy", higher_is_better: bool = True, unit: str = "epoch",
                 restore_best: bool = True) -> None:
        if unit not in ("epoch", "eval"):
            raise ValueError(f"unit must be 'epoch' or 'eval', not {unit!r}")
        self.metric = metric
        self.higher_is_better = higher_is_better
        self.unit = unit
        self.restore_best = restore_best
        self.best = BestModel()
        self.last: Optional[Decision] = None
        self._training = False
        self._main = True
        self._epoch: Optional[int] = None      # the open epoch's number
        self._save_pending = False
        self._handler: Optional[CallbackHandler] = None
        self._energy: Optional[EnergyLog] = None

    # -- the run ------------------------------------------------------------

    def on_train_begin(self, args, state, control, **kwargs):
        self._training = True
        self._main = state.is_world_process_zero
        # The Trainer's callback handler, which called this: standalone, the
        # energy goes out through it like any log of the Trainer.
        caller = sys._getframe(1).f_locals.get("self")
        self._handler = caller if isinstance(caller, CallbackHandler) else None
        evaluates = _strategy(args.eval_strategy)
        wanted = "epoch" if self.unit == "epoch" else "steps"
        if evaluates != wanted:
            raise ValueError(f"PowertrainCallback(unit={self.unit!r}) needs TrainingArguments(eval_strategy="
                             f"{wanted!r}), not {evaluates!r}: powertrain ends an epoch with its evaluation")
        source = resume_path()
        if source:
            if state.global_step == 0:
                raise RuntimeError("powertrain continues this run from a checkpoint: pass resume_from_checkpoint="
                                   "powertrain.integrations.transformers.resume_from_checkpoint() to trainer.train()")
            saved = os.path.join(source, STATE_FILE)
            if os.path.exists(saved):
                self.best.load(torch.load(saved, map_location="cpu", weights_only=True).get("best"))
        if self._main and not _client.active():
            self._energy = EnergyLog()

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self._training = False
        if self._energy is not None:
            self._energy.close()
            self._energy = None
        if self.restore_best:
            self.best.restore(model)

    # -- epoch boundaries ---------------------------------------------------

    def _open(self) -> None:
        if self._epoch is not None:
            return
        if not self._main:
            self._epoch = 0
            return
        # Entered and left at once: the epoch stays open until report().
        with _client.epoch() as number:
            self._epoch = number
        if self._energy is not None:
            self._energy.begin(number)

    def on_epoch_begin(self, args, state, control, **kwargs):
        if self.unit == "epoch":
            self._open()

    def on_step_begin(self, args, state, control, **kwargs):
        if self.unit == "eval":
            self._open()

    def _to_eval(self, control) -> None:
        if control.should_evaluate and self._epoch is not None and self._main:
            _client._switch_phase("eval", self._epoch)

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.unit == "epoch":
            self._to_eval(control)

    def on_step_end(self, args, state, control, **kwargs):
        if self.unit == "eval":
            self._to_eval(control)

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        if not self._training or self._epoch is None:
            return  # an evaluation outside training (the test set)
        number, self._epoch = self._epoch, None
        stop = False
        if self._main:
            value = self._metric(metrics or {})
            decision = _client.report(val_metric=value if self.higher_is_better else -value,
                                      val_loss=(metrics or {}).get("eval_loss"),
                                      train_loss=self._last_train_loss(state))
            self.last = decision
            stop = decision.stop
            if decision.best and model is not None:
                self.best.keep(number, value, model)
            if decision.stop and at_limit(number):
                control.should_save = True  # the Trainer saves right after this evaluation
                self._save_pending = True
            if self._energy is not None:
                self._log(args, state, control, self._energy.end())
        if _share_stop(stop):
            control.should_training_stop = True
        return control

    def on_save(self, args, state, control, **kwargs):
        if not (self._save_pending and self._main):
            return
        self._save_pending = False
        checkpoint = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        target = config().save_state
        best = self.best.as_dict()

        def fill(tmp: str) -> None:
            shutil.copytree(checkpoint, tmp, dirs_exist_ok=True)
            torch.save({"best": best}, os.path.join(tmp, STATE_FILE))

        write_dir_atomically(target, fill)

    # -- helpers ------------------------------------------------------------

    def _metric(self, metrics: Dict[str, Any]) -> float:
        for key in (f"eval_{self.metric}", self.metric):
            if key in metrics:
                return float(metrics[key])
        raise KeyError(f"PowertrainCallback: the evaluation has no metric {self.metric!r} "
                       f"(it has {', '.join(sorted(metrics)) or 'none'}): pass PowertrainCallback(metric=...) "
                       "or a compute_metrics that returns it")

    @staticmethod
    def _last_train_loss(state) -> Optional[float]:
        for entry in reversed(state.log_history):
            if "loss" in entry and math.isfinite(float(entry["loss"])):
                return float(entry["loss"])
        return None

    def _log(self, args, state, control, figures: Optional[Dict[str, float]]) -> None:
        """Logs as Trainer.log does: into log_history and to every callback's on_log."""
        if not figures:
            return
        logs = dict(figures)
        if state.epoch is not None:
            logs["epoch"] = state.epoch
        state.log_history.append({**logs, "step": state.global_step})
        if self._handler is not None:
            self._handler.on_log(args, state, control, logs)
