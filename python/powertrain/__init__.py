"""powertrain for Python training programs.

The protocol client (standard library only) lets a program run under
``powertrain`` report its epochs and get stop and best-model decisions; outside
powertrain every call is a harmless no-op. Meter measures energy directly
through the native module powertrain._native, where it is built.
"""
from pkgutil import extend_path

# In a source checkout the native module is built into another folder
# (<build>/python/powertrain); both folders on PYTHONPATH form one package.
__path__ = extend_path(__path__, __name__)

from ._client import (  # noqa: E402
    PROTOCOL, Decision, ProtocolError, active, checkpoint, epoch, epochs, phase, progress, report,
    should_stop, start_epoch, test)
from ._config import Config, config  # noqa: E402
from ._meter import Meter, NativeModuleMissing, Window  # noqa: E402
from ._resume import Resumable, resume  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "PROTOCOL", "Config", "Decision", "Meter", "NativeModuleMissing", "ProtocolError", "Resumable", "Window",
    "active", "checkpoint", "config", "epoch", "epochs", "phase", "progress", "report", "resume", "should_stop",
    "start_epoch", "test",
]
