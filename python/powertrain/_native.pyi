# Type stub of the native module powertrain._native (python/native.cpp).
from typing import Any, Dict, List, Sequence

class WindowResult:
    name: str
    energy_j: float
    machine_energy_j: float
    attribution: str
    duration_s: float
    avg_power_w: float
    peak_power_w: float
    method: str
    estimated: bool
    components: List[Dict[str, Any]]
    channels: List[Dict[str, Any]]
    notes: List[str]
    def energy_j_of(self, component: str) -> float: ...

class Meter:
    closed: bool
    def __init__(self, interval_ms: int = 100, disabled: Sequence[str] = ..., estimate_scope: str = "system") -> None: ...
    def sources(self) -> List[Dict[str, Any]]: ...
    def begin(self, name: str) -> None: ...
    def end(self, name: str) -> WindowResult: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Meter": ...
    def __exit__(self, *args: Any) -> None: ...
