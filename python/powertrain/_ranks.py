"""Which process of a distributed run this is, and how its ranks agree.

A program started by torchrun, by srun over several tasks, or by mpirun is
one rank of several. powertrain measures the run once per node, so only one
process per node talks to it: the node's local rank 0, where powertrain's
socket is in the environment. The decision that counts (stop, best) is
global rank 0's; every other rank receives it, so that all ranks stop at the
same epoch. It travels through torch.distributed when the program has
initialized it (a broadcast from rank 0, so every rank must call report()
for every epoch, as DDP scripts do), else through files in the folder of
powertrain's socket (the ranks of one node; several nodes need
torch.distributed).
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

# (launcher, rank, world size, local rank, local world size, node rank) variables, first match wins:
# torchrun's own before the scheduler's, which a job step inside a trial also carries.
_LAUNCHERS: Tuple[Tuple[str, str, str, str, str, str], ...] = (
    ("torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK"),
    ("mpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
     "OMPI_COMM_WORLD_LOCAL_SIZE", "OMPI_COMM_WORLD_NODE_RANK"),
    ("mpi", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS", ""),
    ("slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "", "SLURM_NODEID"),
)


@dataclass(frozen=True)
class Rank:
    """This process's place in its run (0 of 1 for a program run alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    node_rank: int = 0
    launcher: str = ""
    """torchrun, mpi, slurm, or empty for a single process."""

    @property
    def leader(self) -> bool:
        """Global rank 0: its decisions count for every rank."""
        return self.rank == 0

    @property
    def speaker(self) -> bool:
        """The process of its node that talks to powertrain (local rank 0)."""
        return self.local_rank == 0


def _read_int(env: Mapping[str, str], name: str) -> Optional[int]:
    raw = env.get(name, "").strip() if name else ""
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer rank") from None


def detect(env: Optional[Mapping[str, str]] = None) -> Rank:
    """The rank of this process from its launcher's variables. A batch
    script in a Slurm job (SLURM_PROCID 0 but not inside `srun`) and a
    process outside any launcher are rank 0 of 1."""
    env = os.environ if env is None else env
    for launcher, rank_var, size_var, local_var, local_size_var, node_var in _LAUNCHERS:
        rank = _read_int(env, rank_var)
        if rank is None:
            continue
        if launcher == "slurm" and "SLURM_STEP_ID" not in env:
            continue  # the batch step: one process whatever --ntasks says
        if launcher == "slurm" and env.get("POWERTRAIN_SLURM_TASK") == ".".join(
                env.get(v, "") for v in ("SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_PROCID")):
            continue  # powertrain's own task in its step (a meter per node), inherited: not a rank of this program
        size = _read_int(env, size_var) or 1
        local = _read_int(env, local_var)
        node = _read_int(env, node_var)
        if local is None:
            local_size = _read_int(env, local_size_var)
            local = rank % local_size if local_size else rank
        if node is None:
            local_size = _read_int(env, local_size_var)
            node = rank // local_size if local_size else 0
        if not 0 <= rank < size or local < 0 or node < 0:
            raise ValueError(f"{rank_var}={rank} does not fit {size_var}={size}")
        return Rank(rank=rank, world_size=size, local_rank=local, node_rank=node, launcher=launcher)
    return Rank()


def _torch_group() -> Any:
    """torch.distributed when the program has initialized it, else None
    (never imports torch itself)."""
    dist = sys.modules.get("torch.distributed")
    if dist is None:
        return None
    try:
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            return dist
    except (RuntimeError, ValueError):
        return None
    return None


class Channel:
    """Global rank 0's decision for every rank, epoch by epoch."""

    def __init__(self, rank: Rank, folder: Optional[str], timeout_s: float) -> None:
        self.rank = rank
        self.folder = folder
        self.timeout_s = timeout_s

    def share(self, epoch: int, mine: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        """Rank 0 passes its decision (a dict), the others None; every rank
        gets rank 0's. A no-op for a single process."""
        if self.rank.world_size <= 1:
            assert mine is not None
            return mine
        dist = _torch_group()
        if dist is not None:
            box = [mine if self.rank.leader else None]
            dist.broadcast_object_list(box, src=0)
            if not isinstance(box[0], dict):
                raise RuntimeError(f"rank 0 shared no decision for epoch {epoch}")
            return box[0]
        return self._through_files(epoch, mine)

    def _path(self, epoch: int) -> str:
        assert self.folder is not None
        return os.path.join(self.folder, f"decision-{epoch}.json")

    def _through_files(self, epoch: int, mine: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        if self.folder is None:
            raise RuntimeError(
                f"rank {self.rank.rank} of {self.rank.world_size}: the ranks cannot agree on a decision without "
                "torch.distributed (call init_process_group before the first report) or powertrain's socket folder")
        path = self._path(epoch)
        if self.rank.leader:
            assert mine is not None
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(mine, f)
            os.replace(tmp, path)  # whole or absent for the readers
            return mine
        deadline = time.monotonic() + self.timeout_s
        delay = 0.005
        while True:
            try:
                with open(path, encoding="utf-8") as f:
                    return json.load(f)
            except FileNotFoundError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"rank {self.rank.rank}: rank 0 shared no decision for epoch {epoch} within {self.timeout_s:g} s "
                    "(several nodes need torch.distributed initialized before the first report)")
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
