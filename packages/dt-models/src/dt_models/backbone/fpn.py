"""Feature Pyramid Network (Lin et al. 2017) on top of a bottom-up backbone, with extra top levels;
the ResNet + FPN config ``ResNetFPNConfig`` (registered as ``ResNetFPN``) and ``build_resnet_fpn``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from dt_config import ConfigProblem
from dt_config import validators as check
from dt_models.backbone.backbone import Backbone
from dt_models.backbone.resnet import ResNetConfig, build_resnet
from dt_models.layers import NORM_NAMES, Conv2d, ShapeSpec, get_norm
from dt_models.registry import BACKBONE_REGISTRY, BackboneConfig

__all__ = ["FPN", "LastLevelMaxPool", "LastLevelP6P7", "ResNetFPNConfig", "build_resnet_fpn"]


def _xavier_fill(module: nn.Module) -> None:
    nn.init.kaiming_uniform_(module.weight, a=1)
    if module.bias is not None:
        nn.init.constant_(module.bias, 0)


class LastLevelMaxPool(nn.Module):
    """P6 as a stride-2 subsampling of P5 (Faster/Mask R-CNN FPN)."""

    num_levels = 1
    in_feature = "p5"

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [F.max_pool2d(x, kernel_size=1, stride=2, padding=0)]


class LastLevelP6P7(nn.Module):
    """P6 and P7 from C5 (or P5) by two stride-2 3x3 convolutions (RetinaNet, FCOS).

    Args:
        in_feature: ``"res5"`` (bottom-up C5) or ``"p5"`` (the FPN's own P5).
    """

    num_levels = 2

    def __init__(self, in_channels: int, out_channels: int, in_feature: str = "res5") -> None:
        super().__init__()
        self.in_feature = in_feature
        self.p6 = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
        self.p7 = nn.Conv2d(out_channels, out_channels, 3, 2, 1)
        for conv in (self.p6, self.p7):
            _xavier_fill(conv)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        p6 = self.p6(x)
        return [p6, self.p7(F.relu(p6))]


class FPN(Backbone):
    """Top-down pathway with lateral connections; outputs ``p{log2(stride)}`` maps of equal width.

    Args:
        bottom_up: a :class:`Backbone` producing ``in_features``.
        in_features: bottom-up feature names, finest first, with strides doubling each time.
        out_channels: channels of every output map.
        norm: normalization of the lateral and output convolutions (``""``: none, with biases).
        top_block: extra coarser levels (``LastLevelMaxPool``, ``LastLevelP6P7``) or ``None``.
        fuse_type: ``"sum"`` or ``"avg"`` of lateral and upsampled top-down features.
        square_pad: if > 0, inputs are padded to this square size.
    """

    def __init__(
        self,
        *,
        bottom_up: Backbone,
        in_features: Sequence[str],
        out_channels: int,
        norm: str = "",
        top_block: nn.Module | None = None,
        fuse_type: str = "sum",
        square_pad: int = 0,
    ) -> None:
        super().__init__()
        if fuse_type not in ("sum", "avg"):
            raise ValueError(f"fuse_type must be 'sum' or 'avg', got {fuse_type!r}")
        shapes = bottom_up.output_shape()
        missing = [f for f in in_features if f not in shapes]
        if not in_features or missing:
            raise ValueError(
                f"in_features must be among the bottom-up outputs {list(shapes)}, got {list(in_features)}"
            )
        strides = [shapes[f].stride for f in in_features]
        for prev, cur in zip(strides[:-1], strides[1:], strict=True):
            if cur != 2 * prev:
                raise ValueError(f"FPN needs strides that double at each level, got {strides}")
        use_bias = norm == ""
        lateral_convs, output_convs = [], []
        for name, stride in zip(in_features, strides, strict=True):
            level = int(math.log2(stride))
            lateral = Conv2d(
                shapes[name].channels, out_channels, 1, bias=use_bias, norm=get_norm(norm, out_channels)
            )
            output = Conv2d(
                out_channels, out_channels, 3, padding=1, bias=use_bias, norm=get_norm(norm, out_channels)
            )
            _xavier_fill(lateral)
            _xavier_fill(output)
            self.add_module(f"fpn_lateral{level}", lateral)
            self.add_module(f"fpn_output{level}", output)
            lateral_convs.append(lateral)
            output_convs.append(output)
        # coarsest first, the order of the top-down pass
        self.lateral_convs = lateral_convs[::-1]
        self.output_convs = output_convs[::-1]
        self.bottom_up = bottom_up
        self.in_features = tuple(in_features)
        self.top_block = top_block
        self.fuse_type = fuse_type
        self._square_pad = square_pad
        self._out_feature_strides = {f"p{int(math.log2(s))}": s for s in strides}
        if top_block is not None:
            last = int(math.log2(strides[-1]))
            for level in range(last + 1, last + 1 + top_block.num_levels):
                self._out_feature_strides[f"p{level}"] = 2**level
        self._out_features = list(self._out_feature_strides)
        self._out_feature_channels = {k: out_channels for k in self._out_features}
        self._size_divisibility = strides[-1]
        if top_block is not None and top_block.in_feature not in (*self._out_features, *shapes):
            raise ValueError(
                f"top block reads {top_block.in_feature!r}, which is neither an FPN nor a bottom-up output"
            )

    @property
    def channels_last_on_cpu(self) -> bool:
        # the FPN's own ops accept NHWC; the bottom-up decides
        return self.bottom_up.channels_last_on_cpu

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    @property
    def padding_constraints(self) -> dict[str, int]:
        return {"square_size": self._square_pad}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Map ``Tensor[N, C, H, W]`` (H, W multiples of ``size_divisibility``) to ``{"p2": ..., ...}``."""
        bottom_up = self.bottom_up(x)
        prev = self.lateral_convs[0](bottom_up[self.in_features[-1]])
        results = [self.output_convs[0](prev)]
        for idx in range(1, len(self.lateral_convs)):
            features = bottom_up[self.in_features[-idx - 1]]
            top_down = F.interpolate(prev, scale_factor=2.0, mode="nearest")
            prev = self.lateral_convs[idx](features) + top_down
            if self.fuse_type == "avg":
                prev = prev / 2
            results.insert(0, self.output_convs[idx](prev))
        if self.top_block is not None:
            name = self.top_block.in_feature
            source = bottom_up[name] if name in bottom_up else results[self._out_features.index(name)]
            results.extend(self.top_block(source))
        return dict(zip(self._out_features, results, strict=True))


@attrs.define(frozen=True, kw_only=True)
class ResNetFPNConfig(BackboneConfig):
    """A ResNet bottom-up with an FPN on ``in_features`` and an optional extra top block.

    ``top_block``: ``"max_pool"`` adds P6 by subsampling P5 (R-CNN), ``"p6p7"`` adds P6 and P7 by
    convolutions on ``top_block_in_feature`` (RetinaNet), ``""`` adds nothing.
    """

    name: ClassVar[str] = "ResNetFPN"
    resnet: ResNetConfig = attrs.field(factory=ResNetConfig, validator=check.instance_of(ResNetConfig))
    in_features: tuple[str, ...] = attrs.field(
        default=("res2", "res3", "res4", "res5"), validator=check.non_empty
    )
    out_channels: int = attrs.field(default=256, validator=check.at_least(1))
    norm: str = attrs.field(default="", validator=check.one_of(NORM_NAMES))
    fuse_type: str = attrs.field(default="sum", validator=check.one_of(("sum", "avg")))
    top_block: str = attrs.field(default="max_pool", validator=check.one_of(("max_pool", "p6p7", "")))
    top_block_in_feature: str = attrs.field(default="res5", validator=check.one_of(("res5", "p5")))

    def __attrs_post_init__(self) -> None:
        missing = [f for f in self.in_features if f not in self.resnet.out_features]
        if missing:
            raise ConfigProblem(
                f"{missing} not among resnet.out_features {list(self.resnet.out_features)}", key="in_features"
            )

    def output_features(self) -> tuple[str, ...]:
        levels = [int(f[3:]) for f in self.in_features if f.startswith("res")]
        extra = {"max_pool": 1, "p6p7": 2, "": 0}[self.top_block]
        return tuple(f"p{k}" for k in [*levels, *range(levels[-1] + 1, levels[-1] + 1 + extra)])


@BACKBONE_REGISTRY.register(ResNetFPNConfig)
def build_resnet_fpn(config: ResNetFPNConfig, input_shape: ShapeSpec) -> FPN:
    """ResNet bottom-up + FPN (+ P6 by max pooling, or P6/P7 by convolutions)."""
    bottom_up = build_resnet(config.resnet, input_shape)
    top_block: nn.Module | None = None
    if config.top_block == "max_pool":
        top_block = LastLevelMaxPool()
    elif config.top_block == "p6p7":
        source = config.top_block_in_feature
        in_channels = config.out_channels if source == "p5" else bottom_up.output_shape()["res5"].channels
        top_block = LastLevelP6P7(in_channels, config.out_channels, in_feature=source)
    return FPN(
        bottom_up=bottom_up, in_features=config.in_features, out_channels=config.out_channels,
        norm=config.norm, top_block=top_block, fuse_type=config.fuse_type,
    )  # fmt: skip
