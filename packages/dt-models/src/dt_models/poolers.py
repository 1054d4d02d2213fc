"""``ROIPooler``: pool regions from a feature pyramid, choosing each box's level by its scale; its
config ``PoolerConfig`` and ``build_pooler``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import torch
from torch import nn

import dt_ops
from dt_config import validators as check
from dt_models.layers import ShapeSpec, nonzero_tuple

__all__ = [
    "POOLER_TYPES",
    "PoolerConfig",
    "ROIPooler",
    "assign_boxes_to_levels",
    "build_pooler",
    "convert_boxes_to_pooler_format",
]

POOLER_TYPES = ("ROIAlign", "ROIAlignV2", "ROIPool", "ROIAlignRotated")


class _LevelPooler(nn.Module):
    """One pyramid level's pooling op (a dt-ops function) with its fixed arguments."""

    def __init__(
        self, kind: str, output_size: tuple[int, int], spatial_scale: float, sampling_ratio: int
    ) -> None:
        super().__init__()
        self.kind, self.output_size = kind, output_size
        self.spatial_scale, self.sampling_ratio = spatial_scale, sampling_ratio

    def forward(self, x: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        if self.kind in ("ROIAlign", "ROIAlignV2"):
            return dt_ops.roi_align(
                x,
                rois,
                self.output_size,
                self.spatial_scale,
                self.sampling_ratio,
                aligned=self.kind == "ROIAlignV2",
            )
        if self.kind == "ROIPool":
            return dt_ops.roi_pool(x, rois, self.output_size, self.spatial_scale)
        return dt_ops.roi_align_rotated(x, rois, self.output_size, self.spatial_scale, self.sampling_ratio)

    def extra_repr(self) -> str:
        return (
            f"{self.kind}, output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}"
        )


def _box_tensor(boxes) -> torch.Tensor:
    return boxes if isinstance(boxes, torch.Tensor) else boxes.tensor


def assign_boxes_to_levels(
    box_lists: Sequence, min_level: int, max_level: int, canonical_box_size: int, canonical_level: int
) -> torch.Tensor:
    """The pyramid level index (0 = ``min_level``) of every box, ``Tensor[M]`` int64.

    A box of side ``canonical_box_size`` goes to ``canonical_level``; the level changes by one each
    time the box side doubles (FPN paper, Eq. 1). Boxes are XYXY (``Tensor[Ri, 4]``) or rotated
    (``Tensor[Ri, 5]``, cx cy w h angle), one entry per image.
    """
    tensors = [_box_tensor(b) for b in box_lists]
    if tensors and tensors[0].shape[-1] == 5:
        areas = torch.cat([t[:, 2] * t[:, 3] for t in tensors])
    else:
        areas = torch.cat([(t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1]) for t in tensors])
    box_sizes = torch.sqrt(areas)
    levels = torch.floor(canonical_level + torch.log2(box_sizes / canonical_box_size + 1e-8))
    levels = torch.clamp(levels, min=min_level, max=max_level)
    return levels.to(torch.int64) - min_level


def convert_boxes_to_pooler_format(box_lists: Sequence) -> torch.Tensor:
    """Concatenate per-image boxes into ``Tensor[M, 5]`` (or ``[M, 6]`` rotated) led by the image index."""
    tensors = [_box_tensor(b) for b in box_lists]
    rows = [
        torch.cat([torch.full((t.shape[0], 1), float(i), dtype=t.dtype, device=t.device), t], dim=1)
        for i, t in enumerate(tensors)
    ]
    return torch.cat(rows, dim=0)


class ROIPooler(nn.Module):
    """Pool ``output_size`` regions from the feature maps of a pyramid.

    Args:
        output_size: ``int`` or ``(h, w)``.
        scales: the spatial scale of each feature map (``1 / stride``), finest first; each must be
            a power of two.
        sampling_ratio: ROIAlign samples per bin side (``<= 0``: adaptive).
        pooler_type: ``"ROIAlign"`` (legacy, no half-pixel shift), ``"ROIAlignV2"`` (half-pixel
            aligned), ``"ROIPool"`` or ``"ROIAlignRotated"``.
        canonical_box_size, canonical_level: a box of side ``canonical_box_size`` pools from level
            ``canonical_level`` (224 and 4, as in the FPN paper).
    """

    def __init__(
        self,
        output_size: int | tuple[int, int],
        scales: Sequence[float],
        sampling_ratio: int,
        pooler_type: str,
        canonical_box_size: int = 224,
        canonical_level: int = 4,
    ) -> None:
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        if len(output_size) != 2 or min(output_size) <= 0:
            raise ValueError(f"output_size must be a positive int or (h, w), got {output_size}")
        if not scales:
            raise ValueError("scales must name at least one feature map")
        if pooler_type not in POOLER_TYPES:
            raise ValueError(f"pooler_type must be one of {POOLER_TYPES}, got {pooler_type!r}")
        if canonical_box_size <= 0:
            raise ValueError(f"canonical_box_size must be > 0, got {canonical_box_size}")
        self.output_size = tuple(output_size)
        levels = [-math.log2(s) for s in scales]
        if any(not math.isclose(lv, round(lv)) for lv in levels):
            raise ValueError(f"every scale must be a power of two, got {list(scales)}")
        levels = [round(lv) for lv in levels]
        if levels != list(range(levels[0], levels[0] + len(levels))):
            raise ValueError(f"scales must be consecutive pyramid levels, finest first, got {list(scales)}")
        self.min_level, self.max_level = levels[0], levels[-1]
        self.canonical_box_size = canonical_box_size
        self.canonical_level = canonical_level
        self.level_poolers = nn.ModuleList(
            [_LevelPooler(pooler_type, self.output_size, s, sampling_ratio) for s in scales]
        )

    def forward(self, x: list[torch.Tensor], box_lists: Sequence) -> torch.Tensor:
        """Pool every box of every image.

        Args:
            x: feature maps ``Tensor[N, C, Hl, Wl]``, one per level, finest first.
            box_lists: per image, ``Boxes`` / ``RotatedBoxes`` or their tensors, in input pixels.

        Returns:
            ``Tensor[M, C, output_h, output_w]`` with boxes in image order.
        """
        if len(x) != len(self.level_poolers):
            raise ValueError(f"expected {len(self.level_poolers)} feature maps, got {len(x)}")
        if len(box_lists) != x[0].shape[0]:
            raise ValueError(f"got boxes for {len(box_lists)} images but features for {x[0].shape[0]}")
        channels = x[0].shape[1]
        if len(box_lists) == 0:
            return x[0].new_zeros((0, channels, *self.output_size))
        pooler_boxes = convert_boxes_to_pooler_format(box_lists).to(x[0].dtype)  # [M, 5]
        if len(self.level_poolers) == 1:
            return self.level_poolers[0](x[0], pooler_boxes)
        if pooler_boxes.shape[0] == 0:
            return x[0].new_zeros((0, channels, *self.output_size))
        levels = assign_boxes_to_levels(
            box_lists, self.min_level, self.max_level, self.canonical_box_size, self.canonical_level
        )
        output = x[0].new_zeros((pooler_boxes.shape[0], channels, *self.output_size))
        for level, pooler in enumerate(self.level_poolers):
            inds = nonzero_tuple(levels == level)[0]
            if inds.numel() == 0:
                continue
            output.index_put_((inds,), pooler(x[level], pooler_boxes[inds]))
        return output


@attrs.define(frozen=True, kw_only=True)
class PoolerConfig:
    """``ROIPooler`` of axis-aligned boxes: ``type`` is ``ROIAlign``, ``ROIAlignV2`` (half-pixel) or
    ``ROIPool``; ``resolution`` is the output side, ``sampling_ratio`` ROIAlign's (0: adaptive)."""

    type: str = attrs.field(default="ROIAlignV2", validator=check.one_of(POOLER_TYPES[:3]))
    resolution: int = attrs.field(default=7, validator=check.at_least(1))
    sampling_ratio: int = 0


def build_pooler(
    config: PoolerConfig, in_features: Sequence[str], input_shape: dict[str, ShapeSpec]
) -> ROIPooler:
    """``ROIPooler`` over the ``in_features`` maps of ``input_shape`` (scales from their strides)."""
    return ROIPooler(
        output_size=config.resolution,
        scales=[1.0 / input_shape[f].stride for f in in_features],
        sampling_ratio=config.sampling_ratio,
        pooler_type=config.type,
    )
