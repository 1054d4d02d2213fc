"""Rotated boxes (XYWHA_ABS) and their pairwise IoU.

A rotated box is (cx, cy, w, h, a): the center, the width along the box's own x axis, the
height along its own y axis, and the angle in degrees by which the horizontal box (cx, cy, w, h)
is rotated counter-clockwise on screen (x to the right, y down). ``a`` and ``a + 360 k`` are the
same box; (cx, cy, w, h, a) and (cx, cy, w, h, a + 180) cover the same region but are different
boxes for ROI pooling. Numerics follow detectron2's ``rotated_boxes.py``.
"""

from __future__ import annotations

import math

import torch

from ._utils import check_size_pair, require_dt_ops
from .boxes import Boxes, _box_tensor

__all__ = ["RotatedBoxes", "pairwise_iou_rotated"]


class RotatedBoxes(Boxes):
    """``N`` rotated boxes: ``tensor`` is ``Tensor[N, 5]`` float32 of (cx, cy, w, h, angle degrees CCW).

    The same tensor-like surface as :class:`Boxes` (indexing, ``len``, ``to``, ``cat``, ...).
    """

    def __init__(self, tensor: torch.Tensor):
        self.tensor = _box_tensor(tensor, 5, type(self).__name__)

    def area(self) -> torch.Tensor:
        """``Tensor[N]``: w * h."""
        return self.tensor[:, 2] * self.tensor[:, 3]

    def normalize_angles(self) -> None:
        """In place (as detectron2): map angles into [-180, 180) degrees. Returns None."""
        self.tensor[:, 4] = (self.tensor[:, 4] + 180.0) % 360.0 - 180.0

    def clip(self, box_size: tuple[int, int], clip_angle_threshold: float = 1.0) -> None:
        """In place (as detectron2): normalize all angles, then clip the nearly horizontal boxes.

        Boxes whose normalized angle is within ``clip_angle_threshold`` degrees of 0 are clipped like
        horizontal boxes to [0, width] x [0, height] (``box_size`` is (height, width)); their width
        and height never grow. Other boxes are left as they are: there is no single right way to
        clip them, and ROIAlignRotated handles boxes that leave the image. Returns None;
        :meth:`clipped` returns new boxes instead.
        """
        h, w = check_size_pair(box_size, "box_size")
        self._check_finite()
        self.normalize_angles()
        t = self.tensor
        idx = torch.where(torch.abs(t[:, 4]) <= clip_angle_threshold)[0]
        x1 = (t[idx, 0] - t[idx, 2] / 2.0).clamp(min=0, max=w)
        y1 = (t[idx, 1] - t[idx, 3] / 2.0).clamp(min=0, max=h)
        x2 = (t[idx, 0] + t[idx, 2] / 2.0).clamp(min=0, max=w)
        y2 = (t[idx, 1] + t[idx, 3] / 2.0).clamp(min=0, max=h)
        t[idx, 0] = (x1 + x2) / 2.0
        t[idx, 1] = (y1 + y2) / 2.0
        # min() so that rounding never makes a box larger
        t[idx, 2] = torch.min(t[idx, 2], x2 - x1)
        t[idx, 3] = torch.min(t[idx, 3], y2 - y1)

    def clipped(self, box_size: tuple[int, int], clip_angle_threshold: float = 1.0) -> RotatedBoxes:
        """New boxes clipped like :meth:`clip` (angles normalized); this object is not changed."""
        out = self.clone()
        out.clip(box_size, clip_angle_threshold)
        return out

    def nonempty(self, threshold: float = 0.0) -> torch.Tensor:
        """``Tensor[N]`` bool: True where both w and h are larger than ``threshold``."""
        return (self.tensor[:, 2] > threshold) & (self.tensor[:, 3] > threshold)

    def inside_box(self, box_size: tuple[int, int], boundary_threshold: int = 0) -> torch.Tensor:
        """``Tensor[N]`` bool: True where the horizontal bounding rectangle of the box lies in
        [0, width) x [0, height) of ``box_size`` (height, width), up to ``boundary_threshold`` pixels."""
        height, width = check_size_pair(box_size, "box_size")
        t = self.tensor
        c = torch.abs(torch.cos(t[:, 4] * math.pi / 180.0))
        s = torch.abs(torch.sin(t[:, 4] * math.pi / 180.0))
        half_w = t[:, 2] / 2.0
        half_h = t[:, 3] / 2.0
        dx = c * half_w + s * half_h  # half extent of the bounding rectangle
        dy = c * half_h + s * half_w
        return (
            (t[:, 0] - dx >= -boundary_threshold)
            & (t[:, 1] - dy >= -boundary_threshold)
            & (t[:, 0] + dx < width + boundary_threshold)
            & (t[:, 1] + dy < height + boundary_threshold)
        )

    def get_centers(self) -> torch.Tensor:
        """``Tensor[N, 2]``: (cx, cy), a view of ``tensor`` (as detectron2): writing to it moves the boxes."""
        return self.tensor[:, :2]

    def scale(self, scale_x: float, scale_y: float) -> None:
        """In place (as detectron2): scale by ``scale_x`` horizontally and ``scale_y`` vertically.

        With unequal factors a rotated rectangle becomes a parallelogram; it is approximated by
        the rectangle whose edge midpoints are the scaled edge midpoints (as detectron2 does).
        Returns None; :meth:`scaled` returns new boxes instead.
        """
        t = self.tensor
        t[:, 0] *= scale_x
        t[:, 1] *= scale_y
        theta = t[:, 4] * math.pi / 180.0
        c = torch.cos(theta)
        s = torch.sin(theta)
        t[:, 2] *= torch.sqrt((scale_x * c) ** 2 + (scale_y * s) ** 2)
        t[:, 3] *= torch.sqrt((scale_x * s) ** 2 + (scale_y * c) ** 2)
        t[:, 4] = torch.atan2(scale_x * s, scale_y * c) * 180 / math.pi

    def scaled(self, scale_x: float, scale_y: float) -> RotatedBoxes:
        """New boxes scaled like :meth:`scale`; this object is not changed."""
        out = self.clone()
        out.scale(scale_x, scale_y)
        return out


def _xywha_tensor(boxes: RotatedBoxes | torch.Tensor, name: str) -> torch.Tensor:
    if isinstance(boxes, RotatedBoxes):
        return boxes.tensor
    if isinstance(boxes, torch.Tensor) and boxes.dim() == 2 and boxes.shape[-1] == 5:
        return boxes
    got = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
    raise TypeError(f"{name} must be RotatedBoxes or a Tensor[N, 5], got {got}")


def pairwise_iou_rotated(
    boxes1: RotatedBoxes | torch.Tensor, boxes2: RotatedBoxes | torch.Tensor
) -> torch.Tensor:
    """IoU of all pairs of N and M rotated boxes: ``Tensor[N, M]``.

    Computed by dt-ops' ``box_iou_rotated`` (install ``dt-structures[ops]``).
    """
    b1 = _xywha_tensor(boxes1, "boxes1")
    b2 = _xywha_tensor(boxes2, "boxes2")
    dt_ops = require_dt_ops("pairwise_iou_rotated")
    return dt_ops.box_iou_rotated(b1, b2)
