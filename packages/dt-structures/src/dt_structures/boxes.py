"""Axis-aligned boxes: the ``BoxMode`` conventions, ``Boxes`` and pairwise box functions.

Numerics and method semantics follow detectron2's ``detectron2/structures/boxes.py``, so code
ported by changing imports behaves the same: ``clip`` and ``scale`` change the boxes in place and
return None, as detectron2's do. ``clipped`` and ``scaled`` are the non-mutating variants. Invalid
arguments raise ``ValueError``/``TypeError``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from enum import IntEnum, unique
from typing import Any, TypeVar

import numpy as np
import torch

from ._utils import can_inspect_values, check_size_pair, is_integer_index

__all__ = [
    "BoxMode",
    "Boxes",
    "RawBoxes",
    "matched_pairwise_iou",
    "pairwise_intersection",
    "pairwise_ioa",
    "pairwise_iou",
    "pairwise_point_box_distance",
]

RawBoxes = list[float] | tuple[float, ...] | np.ndarray | torch.Tensor
_B = TypeVar("_B", bound="Boxes")


@unique
class BoxMode(IntEnum):
    """How the numbers of a box are to be read.

    - ``XYXY_ABS``: (x0, y0, x1, y1), absolute pixel coordinates; x in [0, width], y in [0, height].
    - ``XYWH_ABS``: (x0, y0, w, h), absolute; the COCO convention.
    - ``XYXY_REL``, ``XYWH_REL``: the same relative to the image size, in [0, 1]. They exist so
      stored modes round-trip; converting from or to them raises ``ValueError``.
    - ``XYWHA_ABS``: (xc, yc, w, h, a), a rotated box: center, size and angle in degrees
      counter-clockwise.
    """

    XYXY_ABS = 0
    XYWH_ABS = 1
    XYXY_REL = 2
    XYWH_REL = 3
    XYWHA_ABS = 4

    @staticmethod
    def convert(box: RawBoxes, from_mode: BoxMode | int, to_mode: BoxMode | int) -> RawBoxes:
        """Convert boxes between the absolute modes.

        Args:
            box: one box as a list/tuple of 4 or 5 numbers, or an array/tensor ``[..., k]``
                (k = 5 for XYWHA_ABS, else 4).
            from_mode, to_mode: ``BoxMode`` members (or their integer values).

        Returns:
            The converted boxes in the container type of ``box`` (list, tuple, ``np.ndarray`` or
            ``Tensor``) and, for arrays and tensors, the same dtype. The input is never modified;
            when the modes are equal ``box`` itself is returned.
        """
        from_mode = _as_mode(from_mode, "from_mode")
        to_mode = _as_mode(to_mode, "to_mode")
        for mode, name in ((from_mode, "from_mode"), (to_mode, "to_mode")):
            if mode in (BoxMode.XYXY_REL, BoxMode.XYWH_REL):
                raise ValueError(
                    f"BoxMode.convert: {name}={mode.name} is a relative mode, which is not supported; "
                    "multiply by the image size to get absolute coordinates first"
                )
        if from_mode == to_mode:
            return box

        if isinstance(box, (list, tuple)):
            if len(box) not in (4, 5):
                raise ValueError(f"box as a list/tuple must have 4 or 5 numbers, got {len(box)}")
            arr = torch.tensor(box)
        elif isinstance(box, np.ndarray):
            arr = torch.from_numpy(np.asarray(box))
        elif isinstance(box, torch.Tensor):
            arr = box
        else:
            raise TypeError(f"box must be a list, tuple, np.ndarray or Tensor, got {type(box).__name__}")
        expected = 5 if from_mode == BoxMode.XYWHA_ABS else 4
        if arr.dim() == 0 or arr.shape[-1] != expected:
            raise ValueError(
                f"box in mode {from_mode.name} must have {expected} numbers in its last dimension, "
                f"got shape {tuple(arr.shape)}"
            )

        out = _CONVERSIONS[(from_mode, to_mode)](arr)
        if isinstance(box, (list, tuple)):
            return type(box)(out.flatten().tolist())
        if isinstance(box, np.ndarray):
            return out.numpy()
        return out


def _as_mode(mode: Any, name: str) -> BoxMode:
    if isinstance(mode, BoxMode):
        return mode
    if isinstance(mode, int) and not isinstance(mode, bool):
        try:
            return BoxMode(mode)
        except ValueError:
            pass
    raise ValueError(f"{name} must be a BoxMode, got {mode!r}")


def _xyxy_to_xywh(arr: torch.Tensor) -> torch.Tensor:
    return torch.cat([arr[..., :2], arr[..., 2:4] - arr[..., :2]], dim=-1)


def _xywh_to_xyxy(arr: torch.Tensor) -> torch.Tensor:
    return torch.cat([arr[..., :2], arr[..., :2] + arr[..., 2:4]], dim=-1)


def _xywha_to_xyxy(arr: torch.Tensor) -> torch.Tensor:
    """Horizontal bounding rectangle of rotated boxes, computed in float64 (as detectron2)."""
    x = arr.double()
    w, h, a = x[..., 2], x[..., 3], x[..., 4]
    c = torch.abs(torch.cos(a * math.pi / 180.0))
    s = torch.abs(torch.sin(a * math.pi / 180.0))
    new_w = c * w + s * h
    new_h = c * h + s * w
    x0 = x[..., 0] - new_w / 2.0
    y0 = x[..., 1] - new_h / 2.0
    return torch.stack([x0, y0, x0 + new_w, y0 + new_h], dim=-1).to(arr.dtype)


def _xywh_to_xywha(arr: torch.Tensor) -> torch.Tensor:
    x = arr.double()
    centers = x[..., :2] + x[..., 2:4] / 2.0
    angles = x.new_zeros(x.shape[:-1] + (1,))
    return torch.cat([centers, x[..., 2:4], angles], dim=-1).to(arr.dtype)


_CONVERSIONS = {
    (BoxMode.XYXY_ABS, BoxMode.XYWH_ABS): _xyxy_to_xywh,
    (BoxMode.XYWH_ABS, BoxMode.XYXY_ABS): _xywh_to_xyxy,
    (BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS): _xywha_to_xyxy,
    (BoxMode.XYWH_ABS, BoxMode.XYWHA_ABS): _xywh_to_xywha,
    (BoxMode.XYXY_ABS, BoxMode.XYWHA_ABS): lambda a: _xywh_to_xywha(_xyxy_to_xywh(a)),
    (BoxMode.XYWHA_ABS, BoxMode.XYWH_ABS): lambda a: _xyxy_to_xywh(_xywha_to_xyxy(a)),
}


def _box_tensor(tensor: Any, box_dim: int, cls_name: str) -> torch.Tensor:
    """Turn the constructor argument of Boxes/RotatedBoxes into a float32 ``[N, box_dim]`` tensor."""
    if isinstance(tensor, torch.Tensor):
        t = tensor.to(torch.float32)
    elif isinstance(tensor, (np.ndarray, list, tuple)):
        t = torch.as_tensor(np.asarray(tensor, dtype=np.float32))
    else:
        raise TypeError(f"{cls_name} takes a Tensor, np.ndarray or list, got {type(tensor).__name__}")
    if t.numel() == 0:
        # reshape (not a new tensor) keeps the result connected to the input when tracing
        t = t.reshape((-1, box_dim))
    if t.dim() != 2 or t.shape[-1] != box_dim:
        raise ValueError(f"{cls_name} expects a tensor of shape [N, {box_dim}], got {tuple(t.shape)}")
    return t


class Boxes:
    """``N`` axis-aligned boxes in XYXY_ABS: ``tensor`` is ``Tensor[N, 4]`` float32 of (x0, y0, x1, y1).

    Behaves like a tensor: ``len``, iteration over rows, indexing by int/slice/bool mask/index tensor
    (always returning ``Boxes``), ``to(device)``, ``device``, ``cat``. Inputs of other dtypes are
    converted to float32, as in detectron2; a float32 tensor is used without a copy.
    """

    tensor: torch.Tensor

    def __init__(self, tensor: torch.Tensor | np.ndarray | Sequence[Sequence[float]]):
        self.tensor = _box_tensor(tensor, 4, type(self).__name__)

    def clone(self: _B) -> _B:
        """A copy that shares no storage with this object."""
        return type(self)(self.tensor.clone())

    def to(self: _B, device: torch.device | str, *, non_blocking: bool = False) -> _B:
        """The boxes on ``device`` (boxes are always float32; there is no dtype argument)."""
        return type(self)(self.tensor.to(device=device, non_blocking=non_blocking))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def area(self) -> torch.Tensor:
        """``Tensor[N]``: (x1 - x0) * (y1 - y0); negative for inverted boxes."""
        t = self.tensor
        return (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])

    def _check_finite(self) -> None:
        if can_inspect_values(self.tensor) and not torch.isfinite(self.tensor).all():
            raise ValueError(f"{type(self).__name__} contain inf or NaN; cannot clip them")

    def clip(self, box_size: tuple[int, int]) -> None:
        """In place (as detectron2): limit x to [0, width] and y to [0, height]; ``box_size`` is
        (height, width). Returns None; :meth:`clipped` returns new boxes instead."""
        h, w = check_size_pair(box_size, "box_size")
        self._check_finite()
        self.tensor[:, 0::2].clamp_(min=0, max=w)
        self.tensor[:, 1::2].clamp_(min=0, max=h)

    def clipped(self: _B, box_size: tuple[int, int]) -> _B:
        """New boxes clipped like :meth:`clip`; this object is not changed."""
        out = self.clone()
        out.clip(box_size)
        return out

    def nonempty(self, threshold: float = 0.0) -> torch.Tensor:
        """``Tensor[N]`` bool: True where both sides are longer than ``threshold``."""
        t = self.tensor
        widths = t[:, 2] - t[:, 0]
        heights = t[:, 3] - t[:, 1]
        return (widths > threshold) & (heights > threshold)

    def inside_box(self, box_size: tuple[int, int], boundary_threshold: int = 0) -> torch.Tensor:
        """``Tensor[N]`` bool: True where the box lies in [0, width) x [0, height) of ``box_size``
        (height, width), allowing ``boundary_threshold`` pixels beyond each border."""
        height, width = check_size_pair(box_size, "box_size")
        t = self.tensor
        return (
            (t[..., 0] >= -boundary_threshold)
            & (t[..., 1] >= -boundary_threshold)
            & (t[..., 2] < width + boundary_threshold)
            & (t[..., 3] < height + boundary_threshold)
        )

    def get_centers(self) -> torch.Tensor:
        """``Tensor[N, 2]``: (x, y) box centers."""
        return (self.tensor[:, :2] + self.tensor[:, 2:]) / 2

    def scale(self, scale_x: float, scale_y: float) -> None:
        """In place (as detectron2): multiply x coordinates by ``scale_x`` and y coordinates by
        ``scale_y``. Returns None; :meth:`scaled` returns new boxes instead."""
        self.tensor[:, 0::2] *= scale_x
        self.tensor[:, 1::2] *= scale_y

    def scaled(self: _B, scale_x: float, scale_y: float) -> _B:
        """New boxes scaled like :meth:`scale`; this object is not changed."""
        out = self.clone()
        out.scale(scale_x, scale_y)
        return out

    @classmethod
    def cat(cls: type[_B], boxes_list: Sequence[_B]) -> _B:
        """Concatenate boxes; the result never shares storage with the inputs. ``[]`` gives no boxes."""
        if not isinstance(boxes_list, (list, tuple)):
            raise TypeError(f"boxes_list must be a list or tuple, got {type(boxes_list).__name__}")
        for i, b in enumerate(boxes_list):
            if not isinstance(b, cls):
                raise TypeError(f"boxes_list[{i}] must be {cls.__name__}, got {type(b).__name__}")
        if len(boxes_list) == 0:
            return cls(torch.empty(0))
        return cls(torch.cat([b.tensor for b in boxes_list], dim=0))

    def __getitem__(self: _B, item: int | slice | torch.Tensor | Sequence[int]) -> _B:
        """Select boxes: an int gives one box (``len == 1``); slices, bool masks of length N and
        index tensors/lists give the selected boxes. The result may share storage with this object."""
        if isinstance(item, tuple):
            raise TypeError(
                f"{type(self).__name__} takes a single index (int, slice, bool mask or index tensor); "
                "index .tensor for columns"
            )
        selected = self.tensor[item]
        if is_integer_index(item):
            selected = selected.unsqueeze(0)
        if selected.dim() != 2:
            raise IndexError(f"indexing {type(self).__name__} with {item!r} did not select rows")
        return type(self)(selected)

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __iter__(self) -> Iterator[torch.Tensor]:
        """Yield one box at a time as a ``Tensor[4]``."""
        yield from self.tensor

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.tensor})"


def _xyxy_tensor(boxes: Boxes | torch.Tensor, name: str) -> torch.Tensor:
    """Accept ``Boxes`` or a raw XYXY ``Tensor[N, 4]`` (any float dtype)."""
    if isinstance(boxes, Boxes):
        t = boxes.tensor
    elif isinstance(boxes, torch.Tensor):
        t = boxes
    else:
        raise TypeError(f"{name} must be Boxes or a Tensor[N, 4], got {type(boxes).__name__}")
    if t.dim() != 2 or t.shape[-1] != 4:
        raise ValueError(
            f"{name} must hold XYXY boxes of shape [N, 4], got {tuple(t.shape)} "
            "(use pairwise_iou_rotated for rotated boxes)"
        )
    return t


def _xyxy_area(t: torch.Tensor) -> torch.Tensor:
    return (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])


def pairwise_intersection(boxes1: Boxes | torch.Tensor, boxes2: Boxes | torch.Tensor) -> torch.Tensor:
    """Intersection areas of all pairs: ``Tensor[N, M]`` for N and M XYXY boxes."""
    b1 = _xyxy_tensor(boxes1, "boxes1")
    b2 = _xyxy_tensor(boxes2, "boxes2")
    width_height = torch.min(b1[:, None, 2:], b2[:, 2:]) - torch.max(b1[:, None, :2], b2[:, :2])  # [N,M,2]
    return width_height.clamp(min=0).prod(dim=2)  # [N,M]


def pairwise_iou(boxes1: Boxes | torch.Tensor, boxes2: Boxes | torch.Tensor) -> torch.Tensor:
    """Intersection over union of all pairs: ``Tensor[N, M]``; 0 where boxes do not intersect
    (including empty boxes). Same formula as detectron2 and torchvision's ``box_iou``."""
    b1 = _xyxy_tensor(boxes1, "boxes1")
    b2 = _xyxy_tensor(boxes2, "boxes2")
    inter = pairwise_intersection(b1, b2)  # [N,M]
    area1 = _xyxy_area(b1)  # [N]
    area2 = _xyxy_area(b2)  # [M]
    return torch.where(
        inter > 0,
        inter / (area1[:, None] + area2 - inter),
        torch.zeros(1, dtype=inter.dtype, device=inter.device),
    )


def pairwise_ioa(boxes1: Boxes | torch.Tensor, boxes2: Boxes | torch.Tensor) -> torch.Tensor:
    """Intersection over the area of ``boxes2`` for all pairs: ``Tensor[N, M]``; 0 where disjoint."""
    b2 = _xyxy_tensor(boxes2, "boxes2")
    inter = pairwise_intersection(boxes1, b2)  # [N,M]
    return torch.where(
        inter > 0, inter / _xyxy_area(b2), torch.zeros(1, dtype=inter.dtype, device=inter.device)
    )


def pairwise_point_box_distance(points: torch.Tensor, boxes: Boxes | torch.Tensor) -> torch.Tensor:
    """Distances from N points ``Tensor[N, 2]`` (x, y) to the 4 edges of M boxes.

    Returns ``Tensor[N, M, 4]``: (left, top, right, bottom) distances, all positive exactly when
    the point is inside the box.
    """
    if not isinstance(points, torch.Tensor) or points.dim() != 2 or points.shape[-1] != 2:
        shape = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"points must be a Tensor[N, 2] of (x, y), got {shape}")
    b = _xyxy_tensor(boxes, "boxes")
    x, y = points.unsqueeze(dim=2).unbind(dim=1)  # each [N, 1]
    x0, y0, x1, y1 = b.unsqueeze(dim=0).unbind(dim=2)  # each [1, M]
    return torch.stack([x - x0, y - y0, x1 - x, y1 - y], dim=2)  # [N, M, 4]


def matched_pairwise_iou(boxes1: Boxes | torch.Tensor, boxes2: Boxes | torch.Tensor) -> torch.Tensor:
    """IoU of matched pairs ``(boxes1[i], boxes2[i])``: ``Tensor[N]``.

    Exactly detectron2's formula ``inter / (area1 + area2 - inter)``: it equals the diagonal of
    ``pairwise_iou`` except that a pair of two empty boxes gives NaN (0 / 0), as in detectron2.
    """
    b1 = _xyxy_tensor(boxes1, "boxes1")
    b2 = _xyxy_tensor(boxes2, "boxes2")
    if len(b1) != len(b2):
        raise ValueError(f"boxes1 and boxes2 must have the same length, got {len(b1)} and {len(b2)}")
    lt = torch.max(b1[:, :2], b2[:, :2])  # [N,2]
    rb = torch.min(b1[:, 2:], b2[:, 2:])  # [N,2]
    wh = (rb - lt).clamp(min=0)  # [N,2]
    inter = wh[:, 0] * wh[:, 1]  # [N]
    return inter / (_xyxy_area(b1) + _xyxy_area(b2) - inter)  # [N]
