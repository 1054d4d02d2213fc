"""``Box2BoxTransformLinear``: FCOS's box coding, distances from a point to the four box edges."""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["Box2BoxTransformLinear"]


class Box2BoxTransformLinear:
    """Deltas ``(l, t, r, b)``: distances from the center of a source box (an FCOS point's cell box)
    to the left, top, right and bottom edges of the target box, divided by the source box's width or
    height when ``normalize_by_size`` (distances in units of the level's stride)."""

    def __init__(self, normalize_by_size: bool = True) -> None:
        self.normalize_by_size = normalize_by_size

    def _strides(self, boxes: torch.Tensor) -> torch.Tensor:
        widths = boxes[:, 2] - boxes[:, 0]
        heights = boxes[:, 3] - boxes[:, 1]
        return torch.stack([widths, heights, widths, heights], dim=1)  # [N, 4]

    def get_deltas(self, src_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
        """Deltas ``Tensor[N, 4]`` from XYXY ``src_boxes`` to ``target_boxes`` (both ``[N, 4]``); they
        are all positive when each source center lies inside its target."""
        if not isinstance(src_boxes, torch.Tensor) or not isinstance(target_boxes, torch.Tensor):
            raise TypeError("src_boxes and target_boxes must be tensors")
        ctr_x = 0.5 * (src_boxes[:, 0] + src_boxes[:, 2])
        ctr_y = 0.5 * (src_boxes[:, 1] + src_boxes[:, 3])
        deltas = torch.stack(
            (ctr_x - target_boxes[:, 0], ctr_y - target_boxes[:, 1],
             target_boxes[:, 2] - ctr_x, target_boxes[:, 3] - ctr_y),
            dim=1,
        )  # fmt: skip
        return deltas / self._strides(src_boxes) if self.normalize_by_size else deltas

    def apply_deltas(self, deltas: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """XYXY boxes from ``deltas`` ``Tensor[N, k*4]`` (negative distances count as 0) around the
        centers of ``boxes`` ``Tensor[N, 4]``; same shape as ``deltas``."""
        deltas = F.relu(deltas)
        boxes = boxes.to(deltas.dtype)
        ctr_x = 0.5 * (boxes[:, 0] + boxes[:, 2])
        ctr_y = 0.5 * (boxes[:, 1] + boxes[:, 3])
        if self.normalize_by_size:
            deltas = deltas * self._strides(boxes).repeat(1, deltas.shape[1] // 4)
        pred = torch.empty_like(deltas)
        pred[:, 0::4] = ctr_x[:, None] - deltas[:, 0::4]
        pred[:, 1::4] = ctr_y[:, None] - deltas[:, 1::4]
        pred[:, 2::4] = ctr_x[:, None] + deltas[:, 2::4]
        pred[:, 3::4] = ctr_y[:, None] + deltas[:, 3::4]
        return pred
