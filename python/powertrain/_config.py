"""The trial's settings that powertrain passes in POWERTRAIN_* variables."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from ._settings import SETTINGS, Settings


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


_PARSERS: Dict[str, Callable[[str], Any]] = {
    "integer": _int, "float": _float, "boolean": _bool, "string": _opt_str, "list": _list}

# Field -> (environment variable, parser): the run settings of powertrain's
# table (_settings.py, generated from it), and what powertrain adds for a run.
# An empty value means "not given" (None), except for the task list, where it
# means "no tasks".
_FIELDS: Dict[str, Tuple[str, Callable[[str], Any]]] = {"run_id": ("POWERTRAIN_RUN_ID", _opt_str)}
_FIELDS.update({name: (var, _PARSERS[kind]) for name, var, kind in SETTINGS})
_FIELDS.update({
    "encoder_checkpoint": ("POWERTRAIN_ENCODER_CHECKPOINT", _opt_str),
    "start_epoch": ("POWERTRAIN_START_EPOCH", _int),
})


@dataclass(frozen=True)
class Config(Settings):
    """A trial's settings. Every attribute is None outside powertrain, and
    None under powertrain when the variable is missing or empty."""

    run_id: Optional[str] = None
    """The run's id in powertrain's results store."""
    encoder_checkpoint: Optional[str] = None
    """Where to save the best model's encoder (beside checkpoint)."""
    start_epoch: Optional[int] = None
    """A continued run (a search's later segment): the first epoch it trains."""

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
