"""Argument validation shared by the public functions: clear ValueError/TypeError messages that name
the argument, raised before any native call."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "FLOAT_DTYPES",
    "autocast_float32",
    "INDEX_DTYPES",
    "check_float_tensor",
    "check_idxs",
    "check_nms_args",
    "check_same_device",
    "check_same_dtype",
    "check_tensor",
    "check_threshold",
    "pair",
]

FLOAT_DTYPES = (torch.float32, torch.float64)
INDEX_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)
_DEVICE_TYPES = ("cpu", "cuda")


def autocast_float32(*values: object) -> tuple:
    """Inside an autocast region, floating tensors (also inside lists) become float32, as torchvision's
    ops behave under autocast: the kernels then see one dtype however the model mixed precisions.
    Outside autocast the values come back unchanged."""
    devices = {_first_device(v) for v in values} - {None}
    if not any(d.type in _DEVICE_TYPES and torch.is_autocast_enabled(d.type) for d in devices):
        return values
    return tuple(_to_float32(v) for v in values)


def _first_device(value: object) -> torch.device | None:
    if isinstance(value, torch.Tensor):
        return value.device
    if isinstance(value, (list, tuple)):
        return next((t.device for t in value if isinstance(t, torch.Tensor)), None)
    return None


def _to_float32(value: object) -> object:
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float32(v) for v in value)
    return value


def check_tensor(
    fn: str,
    name: str,
    value: object,
    *,
    ndim: int | None = None,
    last: int | None = None,
    dtypes: Sequence[torch.dtype] | None = None,
) -> torch.Tensor:
    """Require a tensor with ``ndim`` dims, ``last`` as its last size and a dtype in ``dtypes``."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(value).__name__}")
    if value.device.type not in _DEVICE_TYPES:
        raise ValueError(f"{fn}: {name} must be on a cpu or cuda device, got {value.device}")
    if ndim is not None and value.dim() != ndim:
        shape = "[" + ", ".join(["N"] * (ndim - 1) + [str(last) if last is not None else "N"]) + "]"
        raise ValueError(f"{fn}: {name} must be {ndim}-D {shape}, got shape {tuple(value.shape)}")
    if last is not None and value.shape[-1] != last:
        raise ValueError(
            f"{fn}: {name} must have {last} values in its last dim, got shape {tuple(value.shape)}"
        )
    if dtypes is not None and value.dtype not in dtypes:
        names = " or ".join(str(d).replace("torch.", "") for d in dtypes)
        raise TypeError(f"{fn}: {name} must have dtype {names}, got {str(value.dtype).replace('torch.', '')}")
    return value


def check_float_tensor(fn: str, name: str, value: object, **kwargs: int | None) -> torch.Tensor:
    return check_tensor(fn, name, value, dtypes=FLOAT_DTYPES, **kwargs)


def check_same_device(fn: str, **tensors: torch.Tensor | None) -> None:
    """Require every given tensor on one device."""
    present = {name: t for name, t in tensors.items() if t is not None}
    devices = {t.device for t in present.values()}
    if len(devices) > 1:
        listing = ", ".join(f"{name} on {t.device}" for name, t in present.items())
        raise ValueError(f"{fn}: all tensors must be on the same device, got {listing}")


def check_same_dtype(fn: str, **tensors: torch.Tensor | None) -> None:
    """Require every given tensor to have one dtype."""
    present = {name: t for name, t in tensors.items() if t is not None}
    if len({t.dtype for t in present.values()}) > 1:
        listing = ", ".join(f"{name} is {str(t.dtype).replace('torch.', '')}" for name, t in present.items())
        raise TypeError(f"{fn}: tensors must have the same dtype, got {listing}")


def pair(fn: str, name: str, value: int | Sequence[int], *, minimum: int) -> tuple[int, int]:
    """``value`` (an int or a pair of ints, each >= minimum) as a pair."""
    items = (value, value) if isinstance(value, int) else tuple(value)
    if len(items) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise TypeError(f"{fn}: {name} must be an int or a pair of ints, got {value!r}")
    if any(v < minimum for v in items):
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value!r}")
    return items[0], items[1]


def check_threshold(fn: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{fn}: {name} must be a float, got {type(value).__name__}")
    return float(value)


def check_idxs(fn: str, boxes: torch.Tensor, idxs: torch.Tensor) -> torch.Tensor:
    """Require integer categories ``Tensor[N]`` on the boxes' device; returned as int64."""
    check_tensor(fn, "idxs", idxs, ndim=1, dtypes=INDEX_DTYPES)
    check_same_device(fn, boxes=boxes, idxs=idxs)
    if idxs.shape[0] != boxes.shape[0]:
        raise ValueError(f"{fn}: idxs must have one entry per box ({boxes.shape[0]}), got {idxs.shape[0]}")
    return idxs.to(torch.int64)


def check_nms_args(
    fn: str, boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, width: int
) -> float:
    """Validate NMS arguments (boxes ``Tensor[N, width]``, scores ``Tensor[N]``); the threshold as float."""
    check_float_tensor(fn, "boxes", boxes, ndim=2, last=width)
    check_float_tensor(fn, "scores", scores, ndim=1)
    check_same_dtype(fn, boxes=boxes, scores=scores)
    check_same_device(fn, boxes=boxes, scores=scores)
    if scores.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"{fn}: scores must have one entry per box ({boxes.shape[0]}), got {scores.shape[0]}"
        )
    return check_threshold(fn, "iou_threshold", iou_threshold)
