"""Validation and conversion of the ROI arguments shared by the pooling ops."""

from __future__ import annotations

import torch
from torch import Tensor

from dt_ops._checks import check_same_device, check_same_dtype, check_tensor

__all__ = ["INPUT_DTYPES", "check_pool_input", "compute_dtype", "rois_from_boxes"]

INPUT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_pool_input(fn: str, input: object) -> Tensor:
    """Require ``input`` to be a floating ``Tensor[B, C, H, W]``."""
    return check_tensor(fn, "input", input, ndim=4, dtypes=INPUT_DTYPES)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Kernels run in float32/float64; half precision inputs are computed in float32."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def rois_from_boxes(fn: str, input: Tensor, boxes: object, width: int) -> Tensor:
    """``Tensor[K, width]`` rows (batch_index, box...) from a tensor of rows or a list of per-image
    ``Tensor[Ki, width - 1]`` boxes; checked against ``input`` for dtype and device."""
    if isinstance(boxes, (list, tuple)):
        for i, b in enumerate(boxes):
            check_tensor(fn, f"boxes[{i}]", b, ndim=2, last=width - 1, dtypes=INPUT_DTYPES)
            check_same_device(fn, input=input, **{f"boxes[{i}]": b})
            check_same_dtype(fn, input=input, **{f"boxes[{i}]": b})
        if len(boxes) == 0:
            return input.new_empty((0, width))
        index = torch.cat([torch.full_like(b[:, :1], i) for i, b in enumerate(boxes)])
        rois = torch.cat([index, torch.cat(list(boxes))], dim=1)
    else:
        rois = check_tensor(fn, "boxes", boxes, ndim=2, last=width, dtypes=INPUT_DTYPES)
    check_same_device(fn, input=input, boxes=rois)
    check_same_dtype(fn, input=input, boxes=rois)
    return rois
