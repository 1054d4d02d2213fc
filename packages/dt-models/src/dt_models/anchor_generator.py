"""``DefaultAnchorGenerator``: a fixed set of anchors replicated over every feature-map cell; its config
``AnchorGeneratorConfig`` and ``build_anchor_generator``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import torch
from torch import nn

from dt_config import ConfigProblem
from dt_config import validators as check
from dt_structures import Boxes

__all__ = ["AnchorGeneratorConfig", "DefaultAnchorGenerator", "build_anchor_generator"]


def _broadcast(values: Sequence, num_features: int, name: str) -> list[list[float]]:
    """Accept one list for all levels (``[[32, 64]]``), or one list per level."""
    values = [list(v) if isinstance(v, (list, tuple)) else v for v in values]
    if not values or not all(isinstance(v, list) for v in values):
        raise ValueError(f"{name} must be a non-empty list of lists (one per feature map, or one for all)")
    if len(values) == 1:
        return values * num_features
    if len(values) != num_features:
        raise ValueError(f"{name} has {len(values)} entries but there are {num_features} feature maps")
    return values


class DefaultAnchorGenerator(nn.Module):
    """Anchors of every size x aspect ratio centered at ``offset`` within each cell of each feature map.

    Args:
        sizes: per feature map, anchor sides in input pixels (sqrt of the area); one list is used
            for every map.
        aspect_ratios: per feature map, height / width ratios; broadcast like ``sizes``.
        strides: the stride of each feature map.
        offset: anchor center within its cell, in ``[0, 1)`` of the stride (0: the top-left corner).
    """

    box_dim = 4

    def __init__(
        self,
        *,
        sizes: Sequence[Sequence[float]],
        aspect_ratios: Sequence[Sequence[float]],
        strides: Sequence[int],
        offset: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= offset < 1.0:
            raise ValueError(f"offset must be in [0, 1), got {offset}")
        self.strides = [int(s) for s in strides]
        self.num_features = len(self.strides)
        sizes = _broadcast(sizes, self.num_features, "sizes")
        aspect_ratios = _broadcast(aspect_ratios, self.num_features, "aspect_ratios")
        self.offset = offset
        self._cell_anchors = [
            self.generate_cell_anchors(s, a) for s, a in zip(sizes, aspect_ratios, strict=True)
        ]
        self._cache: dict[tuple, list[torch.Tensor]] = {}

    @staticmethod
    def generate_cell_anchors(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> torch.Tensor:
        """XYXY anchors centered at (0, 0), ``Tensor[len(sizes) * len(aspect_ratios), 4]``, sizes outer."""
        anchors = []
        for size in sizes:
            area = float(size) ** 2
            for ratio in aspect_ratios:
                if ratio <= 0 or size <= 0:
                    raise ValueError(f"anchor sizes and aspect ratios must be > 0, got {size} and {ratio}")
                w = math.sqrt(area / ratio)
                h = ratio * w
                anchors.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
        return torch.tensor(anchors)

    @property
    def num_cell_anchors(self) -> list[int]:
        """Anchors per cell, per feature map."""
        return [len(a) for a in self._cell_anchors]

    num_anchors = num_cell_anchors

    def _grid_anchors(self, grid_sizes: list[tuple[int, int]], device: torch.device) -> list[torch.Tensor]:
        key = (tuple(grid_sizes), str(device))
        if key not in self._cache:
            anchors = []
            for (height, width), stride, base in zip(
                grid_sizes, self.strides, self._cell_anchors, strict=True
            ):
                start = self.offset * stride
                shifts_x = torch.arange(
                    start, width * stride, step=stride, dtype=torch.float32, device=device
                )
                shifts_y = torch.arange(
                    start, height * stride, step=stride, dtype=torch.float32, device=device
                )
                shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
                shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
                shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)  # [H*W, 4]
                base = base.to(device)
                anchors.append((shifts.view(-1, 1, 4) + base.view(1, -1, 4)).reshape(-1, 4))  # [H*W*A, 4]
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[key] = anchors
        return self._cache[key]

    def forward(self, features: list[torch.Tensor]) -> list[Boxes]:
        """Anchors for feature maps ``Tensor[N, C, Hi, Wi]``: per map, ``Boxes`` of ``Hi*Wi*A`` anchors.

        Anchors are ordered by row, then column, then cell anchor (size-major, ratio-minor).
        """
        if len(features) != self.num_features:
            raise ValueError(f"expected {self.num_features} feature maps, got {len(features)}")
        grid_sizes = [tuple(f.shape[-2:]) for f in features]
        return [Boxes(a) for a in self._grid_anchors(grid_sizes, features[0].device)]

    def extra_repr(self) -> str:
        return f"strides={self.strides}, num_cell_anchors={self.num_cell_anchors}, offset={self.offset}"


@attrs.define(frozen=True, kw_only=True)
class AnchorGeneratorConfig:
    """``DefaultAnchorGenerator``: sizes and aspect ratios per feature map (one entry: all maps)."""

    sizes: tuple[tuple[float, ...], ...] = attrs.field(
        default=((32.0,), (64.0,), (128.0,), (256.0,), (512.0,)), validator=check.non_empty
    )
    aspect_ratios: tuple[tuple[float, ...], ...] = attrs.field(
        default=((0.5, 1.0, 2.0),), validator=check.non_empty
    )
    offset: float = attrs.field(default=0.0, validator=check.between(0.0, 0.999999))

    def __attrs_post_init__(self) -> None:
        for key in ("sizes", "aspect_ratios"):
            values = getattr(self, key)
            if any(len(v) == 0 or min(v) <= 0 for v in values):
                raise ConfigProblem(
                    f"every entry must be a non-empty list of positive numbers, got {values}", key=key
                )

    def check_num_features(self, num_features: int, prefix: str) -> None:
        """Check sizes/aspect ratios have one entry or one per feature map, with equal anchor counts.

        ``prefix`` is this config's dotted key in the caller's config (``"anchor_generator."``).
        """
        for key in ("sizes", "aspect_ratios"):
            n = len(getattr(self, key))
            if n not in (1, num_features):
                raise ConfigProblem(
                    f"has {n} entries but there are {num_features} feature maps (in_features); use 1 or "
                    f"{num_features}",
                    key=f"{prefix}{key}",
                )
        sizes = self.sizes * (num_features if len(self.sizes) == 1 else 1)
        ratios = self.aspect_ratios * (num_features if len(self.aspect_ratios) == 1 else 1)
        counts = {len(s) * len(r) for s, r in zip(sizes, ratios, strict=True)}
        if len(counts) > 1:
            raise ConfigProblem(
                f"every feature map needs the same number of anchors per cell, got {sorted(counts)}",
                key=f"{prefix}sizes",
            )


def build_anchor_generator(config: AnchorGeneratorConfig, strides: Sequence[int]) -> DefaultAnchorGenerator:
    """``DefaultAnchorGenerator`` for feature maps of the given ``strides``."""
    return DefaultAnchorGenerator(
        sizes=config.sizes, aspect_ratios=config.aspect_ratios, strides=strides, offset=config.offset
    )
