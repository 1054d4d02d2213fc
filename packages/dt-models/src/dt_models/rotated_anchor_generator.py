"""``RotatedAnchorGenerator``: rotated anchors ``(cx, cy, w, h, angle)`` on every feature-map cell (RRPN),
its config ``RotatedAnchorGeneratorConfig`` and ``build_rotated_anchor_generator``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import torch
from torch import nn

from dt_config import ConfigProblem
from dt_config import validators as check
from dt_models.anchor_generator import AnchorGeneratorConfig
from dt_structures import RotatedBoxes

__all__ = ["RotatedAnchorGenerator", "RotatedAnchorGeneratorConfig", "build_rotated_anchor_generator"]


def _per_level(values: Sequence[Sequence[float]], num_features: int, name: str) -> list[list[float]]:
    values = [list(v) for v in values]
    if len(values) == 1:
        return values * num_features
    if len(values) != num_features:
        raise ValueError(f"{name} has {len(values)} entries but there are {num_features} feature maps")
    return values


class RotatedAnchorGenerator(nn.Module):
    """Anchors of every size x aspect ratio x angle centered at ``offset`` within each cell.

    Args:
        sizes: per feature map, anchor sides in input pixels (sqrt of the area); one list for all.
        aspect_ratios: per feature map, height / width; broadcast like ``sizes``.
        angles: per feature map, angles in degrees (counter-clockwise); broadcast like ``sizes``.
        strides: the stride of each feature map.
        offset: anchor center within its cell, in ``[0, 1)`` of the stride.
    """

    box_dim = 5

    def __init__(
        self,
        *,
        sizes: Sequence[Sequence[float]],
        aspect_ratios: Sequence[Sequence[float]],
        angles: Sequence[Sequence[float]],
        strides: Sequence[int],
        offset: float = 0.5,
    ) -> None:
        super().__init__()
        if not 0.0 <= offset < 1.0:
            raise ValueError(f"offset must be in [0, 1), got {offset}")
        self.strides = [int(s) for s in strides]
        self.offset = offset
        n = len(self.strides)
        self._cell_anchors = [
            self.generate_cell_anchors(s, r, a)
            for s, r, a in zip(
                _per_level(sizes, n, "sizes"), _per_level(aspect_ratios, n, "aspect_ratios"),
                _per_level(angles, n, "angles"), strict=True,
            )
        ]  # fmt: skip

    @staticmethod
    def generate_cell_anchors(
        sizes: Sequence[float], aspect_ratios: Sequence[float], angles: Sequence[float]
    ) -> torch.Tensor:
        """``Tensor[len(sizes) * len(aspect_ratios) * len(angles), 5]`` anchors centered at (0, 0):
        sizes outermost, then aspect ratios, then angles."""
        anchors = []
        for size in sizes:
            area = float(size) ** 2
            for ratio in aspect_ratios:
                w = math.sqrt(area / ratio)
                anchors.extend([0.0, 0.0, w, ratio * w, float(a)] for a in angles)
        return torch.tensor(anchors, dtype=torch.float32)

    @property
    def num_cell_anchors(self) -> list[int]:
        """Anchors per cell, per feature map."""
        return [len(a) for a in self._cell_anchors]

    def forward(self, features: list[torch.Tensor]) -> list[RotatedBoxes]:
        """Per map ``Tensor[N, C, Hi, Wi]``: ``RotatedBoxes`` of ``Hi*Wi*A`` anchors, ordered by row,
        then column, then cell anchor."""
        if len(features) != len(self.strides):
            raise ValueError(f"expected {len(self.strides)} feature maps, got {len(features)}")
        out = []
        for feature, stride, base in zip(features, self.strides, self._cell_anchors, strict=True):
            height, width = feature.shape[-2:]
            device = feature.device
            start = self.offset * stride
            xs = torch.arange(start, width * stride, step=stride, dtype=torch.float32, device=device)
            ys = torch.arange(start, height * stride, step=stride, dtype=torch.float32, device=device)
            shift_y, shift_x = torch.meshgrid(ys, xs, indexing="ij")
            zeros = torch.zeros_like(shift_x.reshape(-1))
            shifts = torch.stack((shift_x.reshape(-1), shift_y.reshape(-1), zeros, zeros, zeros), dim=1)
            out.append(RotatedBoxes((shifts.view(-1, 1, 5) + base.to(device).view(1, -1, 5)).reshape(-1, 5)))
        return out

    def extra_repr(self) -> str:
        return f"strides={self.strides}, num_cell_anchors={self.num_cell_anchors}, offset={self.offset}"


@attrs.define(frozen=True, kw_only=True)
class RotatedAnchorGeneratorConfig(AnchorGeneratorConfig):
    """``RotatedAnchorGenerator``: ``AnchorGeneratorConfig`` plus ``angles`` (degrees) per feature map."""

    angles: tuple[tuple[float, ...], ...] = attrs.field(
        default=((-90.0, 0.0, 90.0),), validator=check.non_empty
    )

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if any(len(a) == 0 for a in self.angles):
            raise ConfigProblem(f"every entry must be a non-empty list, got {self.angles}", key="angles")

    def check_num_features(self, num_features: int, prefix: str) -> None:
        n = len(self.angles)
        if n not in (1, num_features):
            raise ConfigProblem(
                f"has {n} entries but there are {num_features} feature maps; use 1 or {num_features}",
                key=f"{prefix}angles",
            )
        super().check_num_features(num_features, prefix)
        sizes = self.sizes * (num_features if len(self.sizes) == 1 else 1)
        ratios = self.aspect_ratios * (num_features if len(self.aspect_ratios) == 1 else 1)
        angles = self.angles * (num_features if n == 1 else 1)
        counts = {len(s) * len(r) * len(a) for s, r, a in zip(sizes, ratios, angles, strict=True)}
        if len(counts) > 1:
            raise ConfigProblem(
                f"every feature map needs the same number of anchors per cell, got {sorted(counts)}",
                key=f"{prefix}angles",
            )


def build_rotated_anchor_generator(
    config: RotatedAnchorGeneratorConfig, strides: Sequence[int]
) -> RotatedAnchorGenerator:
    """``RotatedAnchorGenerator`` for feature maps of the given ``strides``."""
    return RotatedAnchorGenerator(
        sizes=config.sizes, aspect_ratios=config.aspect_ratios, angles=config.angles, strides=strides,
        offset=config.offset,
    )  # fmt: skip
