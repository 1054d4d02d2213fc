"""Small private helpers shared by the structures: validation and tracing checks."""

from __future__ import annotations

import numbers
from typing import Any

import torch

__all__ = [
    "can_inspect_values",
    "check_size_pair",
    "is_graph_capture",
    "is_integer_index",
    "is_tracing",
    "require_dt_ops",
]


def is_tracing() -> bool:
    """True under ``torch.jit.trace``, ``torch.compile`` and ``torch.export``."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def is_graph_capture() -> bool:
    """True under ``torch.jit.trace`` and ``torch.export`` (not plain ``torch.compile``)."""
    is_exporting = getattr(torch.compiler, "is_exporting", None)  # torch >= 2.5
    return torch.jit.is_tracing() or (is_exporting is not None and is_exporting())


def can_inspect_values(tensor: torch.Tensor) -> bool:
    """Whether data-dependent checks (``bool(t.all())``) are possible: eager mode and real data."""
    return not is_tracing() and tensor.device.type != "meta"


def check_size_pair(value: Any, name: str) -> tuple[Any, Any]:
    """Validate a ``(height, width)`` pair; tensors are accepted for traced sizes."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 2:
            raise ValueError(f"{name} must be (height, width), got a tensor of shape {tuple(value.shape)}")
        return value[0], value[1]
    if not isinstance(value, (tuple, list, torch.Size)) or len(value) != 2:
        raise ValueError(f"{name} must be a (height, width) pair, got {value!r}")
    for v in value:
        if not isinstance(v, (numbers.Real, torch.Tensor, torch.SymInt, torch.SymFloat)):
            raise TypeError(f"{name} must hold numbers, got {value!r}")
    return value[0], value[1]


def is_integer_index(item: Any) -> bool:
    """An index that selects one element (python/numpy int or an integer 0-dim tensor)."""
    if isinstance(item, bool):
        return False
    if isinstance(item, (numbers.Integral, torch.SymInt)):
        return True
    return (
        isinstance(item, torch.Tensor)
        and item.dim() == 0
        and not item.is_floating_point()
        and item.dtype != torch.bool
    )


def require_dt_ops(feature: str) -> Any:
    """Import ``dt_ops`` for ``feature``, or raise an ImportError that says how to get it."""
    try:
        import dt_ops
    except ImportError as exc:
        raise ImportError(
            f"{feature} needs the native kernels of dt-ops, which are not installed. "
            'Install them with: pip install "dt-structures[ops]"'
        ) from exc
    return dt_ops
