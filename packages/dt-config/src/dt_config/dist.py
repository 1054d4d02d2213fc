"""Rank and world size of this process, for every package; torch is used only if already imported.

``dt_config`` itself does not depend on torch: without a loaded, initialized
``torch.distributed`` these say "one process, rank 0".
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["get_rank", "get_world_size", "is_main_process", "process_group"]


def process_group() -> Any | None:
    """``torch.distributed`` when it is imported and initialized, else ``None``."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    dist = torch.distributed
    if not dist.is_available() or not dist.is_initialized():
        return None
    return dist


def get_world_size() -> int:
    dist = process_group()
    return dist.get_world_size() if dist else 1


def get_rank() -> int:
    dist = process_group()
    return dist.get_rank() if dist else 0


def is_main_process() -> bool:
    return get_rank() == 0
