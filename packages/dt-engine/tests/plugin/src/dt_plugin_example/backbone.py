"""``TinyConvBackbone``: strided 3x3 convolutions giving one feature map per level (``p3`` ... )."""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch
from torch import nn

from dt_config import validators as check
from dt_models.backbone import Backbone
from dt_models.layers import ShapeSpec
from dt_models.registry import BACKBONE_REGISTRY, BackboneConfig


@attrs.define(frozen=True, kw_only=True)
class TinyConvBackboneConfig(BackboneConfig):
    """``levels`` maps of ``width`` channels at strides 8, 16, ... (first map at stride 8)."""

    name: ClassVar[str] = "TinyConvBackbone"
    width: int = attrs.field(default=16, validator=check.at_least(1))
    levels: int = attrs.field(default=2, validator=check.between(1, 4))

    def output_features(self) -> tuple[str, ...]:
        return tuple(f"p{3 + i}" for i in range(self.levels))


class TinyConvBackbone(Backbone):
    def __init__(self, *, in_channels: int, width: int, levels: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=4, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.downs = nn.ModuleList(nn.Conv2d(width, width, 3, stride=2, padding=1) for _ in range(levels - 1))
        self._out_features = [f"p{3 + i}" for i in range(levels)]
        self._out_feature_channels = dict.fromkeys(self._out_features, width)
        self._out_feature_strides = {f"p{3 + i}": 8 * 2**i for i in range(levels)}

    @property
    def size_divisibility(self) -> int:
        return self._out_feature_strides[self._out_features[-1]]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        maps = [self.stem(x)]
        for down in self.downs:
            maps.append(torch.relu(down(maps[-1])))
        return dict(zip(self._out_features, maps, strict=True))


@BACKBONE_REGISTRY.register(TinyConvBackboneConfig)
def build_tiny_conv_backbone(config: TinyConvBackboneConfig, input_shape: ShapeSpec) -> TinyConvBackbone:
    return TinyConvBackbone(in_channels=input_shape.channels or 3, width=config.width, levels=config.levels)
