"""ViTDet's simple feature pyramid: multi-scale maps from the single last map of a plain backbone, by
deconvolutions (x4, x2), identity and max pooling (x0.5), each followed by a 1x1 and a 3x3 convolution;
plus the extra P6 by subsampling. Its config ``ViTSimpleFeaturePyramidConfig`` (registered as
``ViTSimpleFeaturePyramid``) and ``build_vit_sfp``.

Module names equal detectron2's (``simfp_2.0``, ``simfp_2.4.norm``, ...), as do the ViT's under ``net``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import attrs
import torch
from torch import nn

from dt_config import ConfigProblem
from dt_config import validators as check
from dt_models.backbone.backbone import Backbone
from dt_models.backbone.fpn import LastLevelMaxPool
from dt_models.backbone.vit import ViTConfig, build_vit
from dt_models.layers import NORM_NAMES, Conv2d, ShapeSpec, get_norm
from dt_models.registry import BACKBONE_REGISTRY, BackboneConfig

__all__ = ["SimpleFeaturePyramid", "ViTSimpleFeaturePyramidConfig", "build_vit_sfp"]

SCALE_FACTORS = (4.0, 2.0, 1.0, 0.5)


def _rescale_layers(scale: float, dim: int, norm: str) -> tuple[list[nn.Module], int]:
    """The layers changing resolution by ``scale``, and their output channels."""
    if scale == 4.0:
        layers = [
            nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2),
            get_norm(norm, dim // 2) or nn.Identity(),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 2, dim // 4, kernel_size=2, stride=2),
        ]
        return layers, dim // 4
    if scale == 2.0:
        return [nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2)], dim // 2
    if scale == 1.0:
        return [], dim
    if scale == 0.5:
        return [nn.MaxPool2d(kernel_size=2, stride=2)], dim
    raise ValueError(f"scale factors must be among {list(SCALE_FACTORS)}, got {scale}")


class SimpleFeaturePyramid(Backbone):
    """Maps of strides ``net_stride / scale`` named ``p{log2(stride)}`` from one map of ``net``.

    Args:
        net: a backbone whose output ``in_feature`` is the pyramid's only input.
        out_channels: channels of every output map.
        scale_factors: among 4, 2, 1 and 0.5, finest first; the strides must double at each level.
        top_block: extra coarser levels computed from an output (``LastLevelMaxPool``), or ``None``.
        norm: normalization after the 4x deconvolution and in the 1x1 and 3x3 convolutions (``""``:
            none, and the convolutions get biases).
        square_pad: if > 0, inputs are padded to this square size.
    """

    def __init__(
        self,
        *,
        net: Backbone,
        in_feature: str,
        out_channels: int,
        scale_factors: Sequence[float] = SCALE_FACTORS,
        top_block: nn.Module | None = None,
        norm: str = "LN",
        square_pad: int = 0,
    ) -> None:
        super().__init__()
        shapes = net.output_shape()
        if in_feature not in shapes:
            raise ValueError(
                f"in_feature must be one of the net's outputs {list(shapes)}, got {in_feature!r}"
            )
        strides = [int(shapes[in_feature].stride / scale) for scale in scale_factors]
        if not strides or any(b != 2 * a for a, b in zip(strides, strides[1:], strict=False)):
            raise ValueError(f"scale factors must give strides that double at each level, got {strides}")
        dim = shapes[in_feature].channels
        use_bias = norm == ""
        self.stages: list[nn.Sequential] = []
        for scale, stride in zip(scale_factors, strides, strict=True):
            layers, channels = _rescale_layers(scale, dim, norm)
            layers += [
                Conv2d(channels, out_channels, 1, bias=use_bias, norm=get_norm(norm, out_channels)),
                Conv2d(
                    out_channels, out_channels, 3, padding=1, bias=use_bias, norm=get_norm(norm, out_channels)
                ),
            ]
            stage = nn.Sequential(*layers)
            self.add_module(f"simfp_{int(math.log2(stride))}", stage)
            self.stages.append(stage)
        self.net = net
        self.in_feature = in_feature
        self.top_block = top_block
        self._out_feature_strides = {f"p{int(math.log2(s))}": s for s in strides}
        if top_block is not None:
            last = int(math.log2(strides[-1]))
            for level in range(last + 1, last + 1 + top_block.num_levels):
                self._out_feature_strides[f"p{level}"] = 2**level
            if top_block.in_feature not in self._out_feature_strides:
                raise ValueError(f"top block reads {top_block.in_feature!r}, not a pyramid output")
        self._out_features = list(self._out_feature_strides)
        self._out_feature_channels = {name: out_channels for name in self._out_features}
        self._size_divisibility = strides[-1]
        self._square_pad = square_pad

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    @property
    def padding_constraints(self) -> dict[str, int]:
        return {"square_size": self._square_pad}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Map ``Tensor[N, C, H, W]`` to ``{"p2": Tensor[N, out_channels, H / 4, W / 4], ...}``."""
        features = self.net(x)[self.in_feature]
        results = [stage(features) for stage in self.stages]
        if self.top_block is not None:
            results.extend(self.top_block(results[self._out_features.index(self.top_block.in_feature)]))
        return dict(zip(self._out_features, results, strict=True))


@attrs.define(frozen=True, kw_only=True)
class ViTSimpleFeaturePyramidConfig(BackboneConfig):
    """A :class:`ViTConfig` net with a simple feature pyramid; defaults are ViTDet's (ViT-B, strides
    4 to 32 plus P6 by max pooling, layer norms, inputs padded to 1024 x 1024)."""

    name: ClassVar[str] = "ViTSimpleFeaturePyramid"
    net: ViTConfig = attrs.field(factory=ViTConfig, validator=check.instance_of(ViTConfig))
    out_channels: int = attrs.field(default=256, validator=check.at_least(1))
    scale_factors: tuple[float, ...] = attrs.field(
        default=SCALE_FACTORS, validator=[check.non_empty, check.subset_of(SCALE_FACTORS)]
    )
    top_block: str = attrs.field(default="max_pool", validator=check.one_of(("max_pool", "")))
    norm: str = attrs.field(default="LN", validator=check.one_of(NORM_NAMES))
    square_pad: int = attrs.field(default=1024, validator=check.at_least(0))

    def __attrs_post_init__(self) -> None:
        if list(self.scale_factors) != sorted(set(self.scale_factors), reverse=True):
            raise ConfigProblem(
                f"must be distinct and decreasing (finest level first), got {list(self.scale_factors)}",
                key="scale_factors",
            )
        strides = self._strides()
        if any(b != 2 * a for a, b in zip(strides, strides[1:], strict=False)):
            raise ConfigProblem(
                f"must give strides that double at each level, got {strides}", key="scale_factors"
            )
        if self.top_block and strides[-1] != 32:
            raise ConfigProblem(
                f"max_pool subsamples p5, but the coarsest stride is {strides[-1]}", key="top_block"
            )

    def _strides(self) -> list[int]:
        return [int(self.net.patch_size / scale) for scale in self.scale_factors]

    def output_features(self) -> tuple[str, ...]:
        levels = [int(math.log2(s)) for s in self._strides()]
        if self.top_block:
            levels.append(levels[-1] + 1)
        return tuple(f"p{level}" for level in levels)


@BACKBONE_REGISTRY.register(ViTSimpleFeaturePyramidConfig)
def build_vit_sfp(config: ViTSimpleFeaturePyramidConfig, input_shape: ShapeSpec) -> SimpleFeaturePyramid:
    """ViT + simple feature pyramid (+ P6 by subsampling the coarsest level)."""
    net = build_vit(config.net, input_shape)
    top_block = LastLevelMaxPool() if config.top_block == "max_pool" else None
    return SimpleFeaturePyramid(
        net=net, in_feature=config.net.out_feature, out_channels=config.out_channels,
        scale_factors=config.scale_factors, top_block=top_block, norm=config.norm,
        square_pad=config.square_pad,
    )  # fmt: skip
