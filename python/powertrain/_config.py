"""The trial's settings that powertrain passes in POWERTRAIN_* variables."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple


def _opt_str(raw: str) -> Optional[str]:
    return raw or None


def _int(raw: str) -> int:
    return int(raw.strip())


def _float(raw: str) -> float:
    return float(raw.strip())


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("not a boolean")


def _list(raw: str) -> List[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


# Field -> (environment variable, parser). An empty value means "not given"
# (None), except for the task list, where it means "no tasks".
_FIELDS: Dict[str, Tuple[str, Callable[[str], Any]]] = {
    "run_id": ("POWERTRAIN_RUN_ID", _opt_str),
    "batch_size": ("POWERTRAIN_BATCH_SIZE", _int),
    "learning_rate": ("POWERTRAIN_LEARNING_RATE", _float),
    "seed": ("POWERTRAIN_SEED", _int),
    "max_epochs": ("POWERTRAIN_MAX_EPOCHS", _int),
    "device": ("POWERTRAIN_DEVICE", _opt_str),
    "threads": ("POWERTRAIN_THREADS", _int),
    "tasks": ("POWERTRAIN_TASKS", _list),
    "init_encoder": ("POWERTRAIN_INIT_ENCODER", _opt_str),
    "freeze_encoder": ("POWERTRAIN_FREEZE_ENCODER", _bool),
    "checkpoint": ("POWERTRAIN_CHECKPOINT", _opt_str),
    "encoder_checkpoint": ("POWERTRAIN_ENCODER_CHECKPOINT", _opt_str),
    "data_dir": ("POWERTRAIN_DATA_DIR", _opt_str),
    "optimizer": ("POWERTRAIN_OPTIMIZER", _opt_str),
    "momentum": ("POWERTRAIN_MOMENTUM", _float),
    "weight_decay": ("POWERTRAIN_WEIGHT_DECAY", _float),
    "subset": ("POWERTRAIN_SUBSET", _float),
    "start_epoch": ("POWERTRAIN_START_EPOCH", _int),
    "resume_from": ("POWERTRAIN_RESUME_FROM", _opt_str),
    "save_state": ("POWERTRAIN_SAVE_STATE", _opt_str),
}


@dataclass(frozen=True)
class Config:
    """A trial's settings. Every attribute is None outside powertrain, and
    None under powertrain when the variable is missing or empty."""

    run_id: Optional[str] = None
    batch_size: Optional[int] = None
    learning_rate: Optional[float] = None
    seed: Optional[int] = None
    max_epochs: Optional[int] = None
    device: Optional[str] = None
    threads: Optional[int] = None
    tasks: Optional[List[str]] = None
    init_encoder: Optional[str] = None
    freeze_encoder: Optional[bool] = None
    checkpoint: Optional[str] = None
    encoder_checkpoint: Optional[str] = None
    data_dir: Optional[str] = None
    optimizer: Optional[str] = None
    momentum: Optional[float] = None
    weight_decay: Optional[float] = None
    subset: Optional[float] = None
    start_epoch: Optional[int] = None
    """A continued run (a search's later segment): the first epoch it trains."""
    resume_from: Optional[str] = None
    """A continued run: the state file its earlier segment saved."""
    save_state: Optional[str] = None
    """Where to write the run's state when it stops at its epoch limit."""

    def get(self, name: str, default: Any = None) -> Any:
        """The setting `name`, or `default` where it is None (e.g. outside
        powertrain): ``lr = pt.config().get("learning_rate", 0.01)``.
        Raises AttributeError for a name that is not a setting."""
        if name not in _FIELDS:
            raise AttributeError(
                f"powertrain.Config has no setting {name!r} (settings: {', '.join(_FIELDS)})")
        value = getattr(self, name)
        return default if value is None else value

    def as_dict(self) -> Dict[str, Any]:
        """The settings as a plain dictionary."""
        return dataclasses.asdict(self)


def config() -> Config:
    """The POWERTRAIN_* settings of this trial, parsed. Outside powertrain
    (POWERTRAIN_SOCKET unset) every attribute is None. A value that does not
    parse raises ValueError naming the variable."""
    if not os.environ.get("POWERTRAIN_SOCKET"):
        return Config()
    values: Dict[str, Any] = {}
    for field, (var, parse) in _FIELDS.items():
        raw = os.environ.get(var)
        if raw is None:
            continue
        if raw.strip() == "" and parse is not _list:
            continue
        try:
            values[field] = parse(raw)
        except ValueError:
            kind = {_int: "an integer", _float: "a number", _bool: "a boolean (1/0)"}.get(parse, "valid")
            raise ValueError(f"{var}={raw!r} is not {kind}") from None
    return Config(**values)
