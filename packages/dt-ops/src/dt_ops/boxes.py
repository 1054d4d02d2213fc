"""Axis-aligned boxes: non-maximum suppression and pairwise IoU (torchvision semantics).

Boxes are ``Tensor[N, 4]`` in XYXY_ABS: (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dt_ops import _native
from dt_ops._checks import (
    autocast_float32,
    check_float_tensor,
    check_idxs,
    check_nms_args,
    check_same_device,
    check_same_dtype,
)
from dt_ops._nms_impl import nms_impl

__all__ = ["batched_nms", "box_iou", "nms"]


@torch.library.custom_op("dt::nms", mutates_args=())
def _nms_op(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    return nms_impl("nms", boxes, scores, None, iou_threshold)


@torch.library.custom_op("dt::batched_nms", mutates_args=())
def _batched_nms_op(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    return nms_impl("nms", boxes, scores, idxs, iou_threshold)


def _check_nms_fake(boxes: Tensor, scores: Tensor, idxs: Tensor | None) -> None:
    torch._check(boxes.dim() == 2 and boxes.shape[1] == 4, lambda: "boxes must be [N, 4]")
    torch._check(scores.shape == boxes.shape[:1], lambda: "scores must be [N]")
    if idxs is not None:
        torch._check(idxs.shape == boxes.shape[:1], lambda: "idxs must be [N]")


def _dynamic_keep(boxes: Tensor) -> Tensor:
    # The number of kept boxes is data-dependent: an unbacked size (bounded by N when N is static).
    n = boxes.shape[0]
    ctx = torch.library.get_ctx()
    count = ctx.new_dynamic_size(max=n) if isinstance(n, int) else ctx.new_dynamic_size()
    return boxes.new_empty((count,), dtype=torch.int64)


@_nms_op.register_fake
def _(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    _check_nms_fake(boxes, scores, None)
    return _dynamic_keep(boxes)


@_batched_nms_op.register_fake
def _(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    _check_nms_fake(boxes, scores, idxs)
    return _dynamic_keep(boxes)


@torch.library.custom_op("dt::box_iou", mutates_args=())
def _box_iou_op(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    out = boxes1.new_empty((boxes1.shape[0], boxes2.shape[0]))
    if out.numel() > 0:
        _native.call("box_iou", boxes1.device, boxes1.contiguous(), boxes2.contiguous(), out)
    return out


@_box_iou_op.register_fake
def _(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    torch._check(boxes1.dim() == 2 and boxes1.shape[1] == 4, lambda: "boxes1 must be [N, 4]")
    torch._check(boxes2.dim() == 2 and boxes2.shape[1] == 4, lambda: "boxes2 must be [M, 4]")
    return boxes1.new_empty((boxes1.shape[0], boxes2.shape[0]))


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression.

    Args:
        boxes: ``Tensor[N, 4]`` XYXY_ABS, float32 or float64.
        scores: ``Tensor[N]``, same dtype and device.
        iou_threshold: boxes with IoU > iou_threshold with a higher-scored kept box are discarded.

    Returns:
        ``Tensor[K]`` int64 indices of the kept boxes, in decreasing score order (ties: lower index first).
    """
    boxes, scores = autocast_float32(boxes, scores)
    threshold = check_nms_args("nms", boxes, scores, iou_threshold, 4)
    return torch.ops.dt.nms(boxes, scores, threshold)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS independently per category: boxes with different ``idxs`` never suppress each other.

    Args:
        boxes: ``Tensor[N, 4]`` XYXY_ABS.
        scores: ``Tensor[N]``.
        idxs: ``Tensor[N]`` integer category of each box.
        iou_threshold: discard boxes with IoU > iou_threshold.

    Returns:
        ``Tensor[K]`` int64 indices of the kept boxes, in decreasing score order. Equal scores are
        ordered exactly as torchvision's ``batched_nms`` orders them (lower index first up to 1000
        boxes on CPU; above, by torch's descending sort of the kept scores, as its per-class loop).
    """
    boxes, scores = autocast_float32(boxes, scores)
    threshold = check_nms_args("batched_nms", boxes, scores, iou_threshold, 4)
    idxs = check_idxs("batched_nms", boxes, idxs)
    return torch.ops.dt.batched_nms(boxes, scores, idxs, threshold)


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU of ``Tensor[N, 4]`` and ``Tensor[M, 4]`` XYXY_ABS boxes -> ``Tensor[N, M]``.

    Like torchvision, two empty boxes have IoU NaN (0 / 0). Not differentiable.
    """
    boxes1, boxes2 = autocast_float32(boxes1, boxes2)
    check_float_tensor("box_iou", "boxes1", boxes1, ndim=2, last=4)
    check_float_tensor("box_iou", "boxes2", boxes2, ndim=2, last=4)
    check_same_dtype("box_iou", boxes1=boxes1, boxes2=boxes2)
    check_same_device("box_iou", boxes1=boxes1, boxes2=boxes2)
    return torch.ops.dt.box_iou(boxes1, boxes2)
