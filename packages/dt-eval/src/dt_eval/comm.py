"""Gathering to rank 0: the evaluators gather their predictions through torch.distributed when a
process group is initialized, and are plain single-process code otherwise (torch is used only when
it is already loaded; rank and world size come from ``dt_config``)."""

from __future__ import annotations

from typing import Any

from dt_eval._extra import needs_torch_extra

with needs_torch_extra("dt_eval's evaluators"):
    from dt_config import get_rank, get_world_size, is_main_process
    from dt_config.dist import process_group as _dist

__all__ = ["gather", "gather_list", "get_rank", "get_world_size", "is_main_process", "synchronize"]


def synchronize() -> None:
    """Barrier across all ranks (no-op in a single process)."""
    dist = _dist()
    if dist and dist.get_world_size() > 1:
        dist.barrier()


def gather(data: Any, dst: int = 0) -> list:
    """Picklable ``data`` of every rank as a list on rank ``dst`` (``[]`` on the other ranks)."""
    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return [data]
    world = dist.get_world_size()
    out = [None] * world if dist.get_rank() == dst else None
    dist.gather_object(data, out, dst=dst)
    return out if out is not None else []


def gather_list(items: list, distributed: bool = True) -> list | None:
    """Every rank's ``items`` concatenated in rank order on rank 0; ``None`` on the other ranks.

    With ``distributed=False`` (or a single process) ``items`` comes back as it is."""
    if not distributed:
        return items
    synchronize()
    if not is_main_process():
        gather(items)
        return None
    return [item for part in gather(items) for item in part]
