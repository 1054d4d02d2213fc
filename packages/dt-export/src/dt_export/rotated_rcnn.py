"""``RotatedRCNNGraph``: rotated Faster R-CNN inference (``RRPN`` proposals into ``RROIHeads``) as a
capturable graph: :class:`~dt_export.rcnn.RCNNGraph` with rotated boxes ``(cx, cy, w, h, angle)``.

The box operations become the rotated ones of the eager model: clipping of the nearly horizontal
boxes (``RotatedBoxes.clip``, written with ``torch.where`` instead of in-place indexing and its
finiteness check), rotated NMS (dt-ops' ``batched_nms_rotated``) and ``ROIAlignRotated`` pooling.
These dt-ops kernels have no standard ONNX operator, so the family exports to ``.pt2`` and
TorchScript only (deployments import ``dt_ops``).

Outputs: ``rotated_boxes`` ``Tensor[R, 5]`` (XYWHA_ABS, degrees in [-180, 180)), ``scores``, ``classes``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

import dt_ops
from dt_models.meta_arch import GeneralizedRCNN
from dt_models.proposal_generator import RRPN
from dt_models.roi_heads import RotatedFastRCNNOutputLayers, RROIHeads

from .rcnn import RCNNGraph

__all__ = ["CLIP_ANGLE_THRESHOLD", "RotatedRCNNGraph", "clip_rotated", "is_rotated_rcnn"]

CLIP_ANGLE_THRESHOLD = 1.0  # degrees, RotatedBoxes.clip's default
"""Boxes within this many degrees of horizontal are clipped (``RotatedBoxes.clip``'s default)."""


def is_rotated_rcnn(model: nn.Module) -> bool:
    """Whether ``model`` proposes or classifies rotated boxes (an ``RRPN`` or ``RROIHeads``)."""
    return isinstance(getattr(model, "proposal_generator", None), RRPN) or isinstance(
        getattr(model, "roi_heads", None), RROIHeads
    )


def clip_rotated(boxes: torch.Tensor, image_size: tuple) -> torch.Tensor:
    """``RotatedBoxes.clipped``: ``boxes`` ``Tensor[N, 5]`` with angles brought to [-180, 180) and the
    boxes within ``CLIP_ANGLE_THRESHOLD`` degrees of horizontal clipped to the image (never grown)."""
    height, width = image_size
    cx, cy, w, h, angle = boxes.unbind(dim=1)
    angle = (angle + 180.0) % 360.0 - 180.0
    x1 = (cx - w / 2.0).clamp(min=0, max=width)
    y1 = (cy - h / 2.0).clamp(min=0, max=height)
    x2 = (cx + w / 2.0).clamp(min=0, max=width)
    y2 = (cy + h / 2.0).clamp(min=0, max=height)
    clipped = torch.stack(
        ((x1 + x2) / 2.0, (y1 + y2) / 2.0, torch.min(w, x2 - x1), torch.min(h, y2 - y1), angle), dim=1
    )
    horizontal = (angle.abs() <= CLIP_ANGLE_THRESHOLD)[:, None]  # [N, 1]
    return torch.where(horizontal, clipped, torch.stack((cx, cy, w, h, angle), dim=1))


def unsupported_rotated_parts(model: GeneralizedRCNN) -> list[str]:
    """What in the rotated ``model`` this graph cannot express (empty: exportable)."""
    problems = []
    if type(model.proposal_generator) is not RRPN:
        problems.append(f"proposal generator {type(model.proposal_generator).__name__} (supported: RRPN)")
    heads = model.roi_heads
    if type(heads) is not RROIHeads:
        problems.append(f"ROI heads {type(heads).__name__} (supported: RROIHeads)")
    elif type(heads.box_predictor) is not RotatedFastRCNNOutputLayers:
        problems.append(
            f"box predictor {type(heads.box_predictor).__name__} (supported: RotatedFastRCNNOutputLayers)"
        )
    return problems


class RotatedRCNNGraph(RCNNGraph):
    """The inference of a rotated ``GeneralizedRCNN`` (``RRPN``, ``RROIHeads``) on one image."""

    box_dim = 5
    unsupported_parts = staticmethod(unsupported_rotated_parts)

    def __init__(self, model: GeneralizedRCNN) -> None:
        super().__init__(model)
        self.output_names = ("rotated_boxes", "scores", "classes")

    def clip(self, boxes: torch.Tensor, image_size: tuple) -> torch.Tensor:
        return clip_rotated(boxes, image_size)

    def nonempty(self, boxes: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
        return (boxes[:, 2] > threshold) & (boxes[:, 3] > threshold)

    def batched_nms(
        self, boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, threshold: float
    ) -> torch.Tensor:
        return dt_ops.batched_nms_rotated(boxes, scores, idxs, threshold)

    def postprocess(self, boxes: torch.Tensor, image_size: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        """``detector_postprocess`` at scale 1: ``RotatedBoxes.scale(1, 1)`` (sides times
        ``sqrt(cos^2 + sin^2)``, the angle recomputed by ``atan2``; ``RotatedBoxes`` itself cannot be
        built on a tensor of unknown length in a graph), clipped again, and the indices of the
        non-empty boxes."""
        cx, cy, w, h, angle = boxes.unbind(dim=1)
        theta = angle * math.pi / 180.0
        c, s = torch.cos(theta), torch.sin(theta)
        w = w * torch.sqrt(c**2 + s**2)
        h = h * torch.sqrt(s**2 + c**2)
        angle = torch.atan2(s, c) * 180 / math.pi
        boxes = self.clip(torch.stack((cx, cy, w, h, angle), dim=1), image_size)
        return boxes, torch.nonzero(self.nonempty(boxes)).squeeze(1)
