"""The run settings powertrain passes to a program in POWERTRAIN_* variables.

Generated from powertrain's table of run settings (src/run/settings.cpp); do
not edit. tests/run/settings_test.cpp fails when this file and the table
differ, and writes it afresh when run with POWERTRAIN_WRITE_SETTINGS=1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

# (setting, environment variable, type: integer, float, boolean, string or list)
SETTINGS = (
    ("batch_size", "POWERTRAIN_BATCH_SIZE", "integer"),
    ("learning_rate", "POWERTRAIN_LEARNING_RATE", "float"),
    ("seed", "POWERTRAIN_SEED", "integer"),
    ("max_epochs", "POWERTRAIN_MAX_EPOCHS", "integer"),
    ("device", "POWERTRAIN_DEVICE", "string"),
    ("threads", "POWERTRAIN_THREADS", "integer"),
    ("tasks", "POWERTRAIN_TASKS", "list"),
    ("init_encoder", "POWERTRAIN_INIT_ENCODER", "string"),
    ("freeze_encoder", "POWERTRAIN_FREEZE_ENCODER", "boolean"),
    ("checkpoint", "POWERTRAIN_CHECKPOINT", "string"),
    ("resume_from", "POWERTRAIN_RESUME_FROM", "string"),
    ("save_state", "POWERTRAIN_SAVE_STATE", "string"),
    ("data_dir", "POWERTRAIN_DATA_DIR", "string"),
    ("optimizer", "POWERTRAIN_OPTIMIZER", "string"),
    ("momentum", "POWERTRAIN_MOMENTUM", "float"),
    ("weight_decay", "POWERTRAIN_WEIGHT_DECAY", "float"),
    ("nesterov", "POWERTRAIN_NESTEROV", "boolean"),
    ("subset", "POWERTRAIN_SUBSET", "float"),
    ("nproc_per_node", "POWERTRAIN_NPROC_PER_NODE", "integer"),
    ("nnodes", "POWERTRAIN_NNODES", "integer"),
)


@dataclass(frozen=True)
class Settings:
    """The run settings of a trial; each None where it was not given."""

    batch_size: Optional[int] = None
    """Batch size."""
    learning_rate: Optional[float] = None
    """Learning rate."""
    seed: Optional[int] = None
    """Seed of initialization, shuffling and data subsets (a spec: its seeds or repeats)."""
    max_epochs: Optional[int] = None
    """Epoch limit of a run."""
    device: Optional[str] = None
    """cpu, cuda or cuda:N."""
    threads: Optional[int] = None
    """LibTorch threads (0: all cores)."""
    tasks: Optional[List[str]] = None
    """Label subset for multi-label data, comma-separated (e.g. CelebA attributes)."""
    init_encoder: Optional[str] = None
    """Start from this encoder checkpoint."""
    freeze_encoder: Optional[bool] = None
    """Keep the initial encoder fixed."""
    checkpoint: Optional[str] = None
    """Save the best model here (and its encoder beside it)."""
    resume_from: Optional[str] = None
    """State file of an earlier segment of the same setup to continue from."""
    save_state: Optional[str] = None
    """Where to write the run's state when it stops at max_epochs."""
    data_dir: Optional[str] = None
    """Dataset root (default: the dataset's standard location)."""
    optimizer: Optional[str] = None
    """sgd (with momentum) or adam."""
    momentum: Optional[float] = None
    """SGD momentum."""
    weight_decay: Optional[float] = None
    """Weight decay (L2)."""
    nesterov: Optional[bool] = None
    """SGD with Nesterov momentum (with a momentum above 0)."""
    subset: Optional[float] = None
    """Fraction of the training split used."""
    nproc_per_node: Optional[int] = None
    """Processes per node of a distributed command, started through the launcher."""
    nnodes: Optional[int] = None
    """Nodes a distributed command spans (with nproc_per_node)."""
