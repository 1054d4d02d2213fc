"""Shared implementation of the NMS custom ops (axis-aligned and rotated)."""

from __future__ import annotations

import torch
from torch import Tensor

from dt_ops import _native

__all__ = ["nms_impl"]


def nms_impl(kernel: str, boxes: Tensor, scores: Tensor, idxs: Tensor | None, iou_threshold: float) -> Tensor:
    """Kept indices of ``boxes`` (decreasing score, ties by lower index) from kernel ``nms`` or
    ``nms_rotated``; with ``idxs`` only boxes of the same class suppress each other."""
    n = boxes.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    boxes, scores = boxes.contiguous(), scores.contiguous()
    idxs = idxs.contiguous() if idxs is not None else None
    if boxes.device.type == "cuda":
        keep = _nms_cuda(kernel, boxes, scores, idxs, iou_threshold)
    else:
        keep = torch.empty(n, dtype=torch.int64)
        count = _native.call(kernel, boxes.device, boxes, scores, idxs, iou_threshold, keep)
        keep = keep[:count].clone()
    if idxs is not None and _sorts_like_per_class_loop(kernel, boxes):
        # Same tie order as torchvision's per-class path and detectron2's batched_nms_rotated: kept
        # indices in increasing order, then torch's (unstable) descending sort of their scores.
        keep = keep.sort().values
        keep = keep[scores[keep].sort(descending=True).indices]
    return keep


def _sorts_like_per_class_loop(kernel: str, boxes: Tensor) -> bool:
    # torchvision's batched_nms loops over classes above 4000 (CPU) / 20000 (CUDA) box coordinates and
    # otherwise runs one NMS on offset boxes (ties: lower index first, as here); detectron2's rotated
    # variant always loops.
    return kernel == "nms_rotated" or boxes.numel() > (4000 if boxes.device.type == "cpu" else 20000)


def _nms_cuda(
    kernel: str, boxes: Tensor, scores: Tensor, idxs: Tensor | None, iou_threshold: float
) -> Tensor:
    # The GPU computes the suppression bit matrix of the score-sorted boxes; the greedy sweep over it
    # is sequential and runs on the host, as in torchvision.
    n = boxes.shape[0]
    order = torch.sort(scores, descending=True, stable=True).indices
    sorted_boxes = boxes[order].contiguous()
    sorted_idxs = idxs[order].contiguous() if idxs is not None else None
    mask = torch.empty((n, (n + 63) // 64), dtype=torch.int64, device=boxes.device)
    _native.call(f"{kernel}_mask", boxes.device, sorted_boxes, sorted_idxs, iou_threshold, mask)
    keep = torch.empty(n, dtype=torch.int64)
    count = _native.call("nms_sweep", torch.device("cpu"), mask.cpu(), keep)
    return order[keep[:count].to(boxes.device)]
