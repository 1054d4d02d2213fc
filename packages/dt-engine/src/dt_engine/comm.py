"""Collectives over ``torch.distributed`` that also work when it is not initialized (rank and world
size come from ``dt_config``; the local rank is set by ``launch``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist

from dt_config import get_rank, get_world_size, is_main_process
from dt_config.dist import process_group

__all__ = [
    "all_gather_object",
    "default_device",
    "get_local_rank",
    "get_rank",
    "get_world_size",
    "is_main_process",
    "reduce_mean",
    "synchronize",
]

_LOCAL_RANK = 0


def get_local_rank() -> int:
    """Rank of this process on its machine (set by ``launch``); 0 when not distributed."""
    return _LOCAL_RANK if process_group() is not None else 0


def default_device() -> torch.device:
    """This process's device: ``cuda:<local rank>`` when CUDA is available, else the CPU."""
    return torch.device("cuda", get_local_rank()) if torch.cuda.is_available() else torch.device("cpu")


def _set_local_rank(rank: int) -> None:
    global _LOCAL_RANK
    _LOCAL_RANK = rank


def synchronize() -> None:
    """A barrier across all processes; a no-op when not distributed."""
    if get_world_size() > 1:
        dist.barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]``; ``[obj]`` when not distributed."""
    if get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def reduce_mean(values: Mapping[str, float]) -> dict[str, float]:
    """The mean of each named scalar over all processes (every process must pass the same names)."""
    names = sorted(values)
    if get_world_size() == 1 or not names:
        return {k: float(values[k]) for k in names}
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    stacked = torch.tensor([float(values[k]) for k in names], dtype=torch.float64, device=device)
    dist.all_reduce(stacked)
    stacked /= get_world_size()
    return dict(zip(names, stacked.tolist(), strict=True))
