"""ResNet and ResNeXt backbones (He et al. 2016, Xie et al. 2017), with optional deformable convs;
their config ``ResNetConfig`` (registered as ``ResNet``) and ``build_resnet``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs
import torch
from torch import nn

from dt_config import ConfigProblem
from dt_config import validators as check
from dt_models.backbone.backbone import Backbone
from dt_models.backbone.resnet_blocks import (
    BasicBlock,
    BasicStem,
    BottleneckBlock,
    DeformBottleneckBlock,
    make_bottleneck_stage,
)
from dt_models.layers import NORM_NAMES, ShapeSpec
from dt_models.registry import BACKBONE_REGISTRY, BackboneConfig

__all__ = [
    "BasicBlock",
    "BasicStem",
    "BottleneckBlock",
    "DeformBottleneckBlock",
    "ResNet",
    "ResNetConfig",
    "build_resnet",
    "make_bottleneck_stage",
    "make_resnet_stages",
]

RESNET_DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def make_resnet_stages(
    *,
    depth: int,
    stem_out_channels: int = 64,
    res2_out_channels: int = 256,
    num_groups: int = 1,
    width_per_group: int = 64,
    norm: str = "FrozenBN",
    stride_in_1x1: bool = True,
    res5_dilation: int = 1,
    deform_on_per_stage: Sequence[bool] = (False, False, False, False),
    deform_modulated: bool = False,
    deform_num_groups: int = 1,
    num_stages: int = 4,
) -> list[list[nn.Module]]:
    """Blocks of stages res2..res(1 + num_stages) of a standard ResNet/ResNeXt of ``depth``."""
    if depth not in RESNET_DEPTHS:
        raise ValueError(f"depth must be one of {sorted(RESNET_DEPTHS)}, got {depth}")
    if res5_dilation not in (1, 2):
        raise ValueError(f"res5_dilation must be 1 or 2, got {res5_dilation}")
    if len(deform_on_per_stage) != 4:
        raise ValueError(f"deform_on_per_stage must have 4 values, got {list(deform_on_per_stage)}")
    if depth in (18, 34):
        if res2_out_channels != 64:
            raise ValueError(f"ResNet-{depth} needs res2_out_channels=64, got {res2_out_channels}")
        if res5_dilation != 1 or any(deform_on_per_stage) or num_groups != 1:
            raise ValueError(f"ResNet-{depth} supports no dilation, deformable convs or groups")
    stages = []
    in_channels, out_channels = stem_out_channels, res2_out_channels
    bottleneck_channels = num_groups * width_per_group
    for idx, num_blocks in enumerate(RESNET_DEPTHS[depth][:num_stages]):
        dilation = res5_dilation if idx == 3 else 1
        first_stride = 1 if idx == 0 or dilation == 2 else 2
        if depth in (18, 34):
            blocks: list[nn.Module] = [
                BasicBlock(
                    in_channels if i == 0 else out_channels,
                    out_channels,
                    stride=first_stride if i == 0 else 1,
                    norm=norm,
                )
                for i in range(num_blocks)
            ]
        else:
            blocks = make_bottleneck_stage(
                num_blocks, in_channels, out_channels, first_stride=first_stride,
                deform=deform_on_per_stage[idx], bottleneck_channels=bottleneck_channels,
                num_groups=num_groups, norm=norm, stride_in_1x1=stride_in_1x1, dilation=dilation,
                deform_modulated=deform_modulated, deform_num_groups=deform_num_groups,
            )  # fmt: skip
        in_channels = out_channels
        stages.append(blocks)
        out_channels *= 2
        bottleneck_channels *= 2
    return stages


class ResNet(Backbone):
    """A stem followed by stages named ``res2``, ``res3``, ...; outputs the named ``out_features``.

    Args:
        stem: a module with ``out_channels`` and ``stride`` attributes.
        stages: lists of blocks (each with ``out_channels`` and ``stride``), the first one is ``res2``.
        out_features: names among ``"stem"``, ``"res2"``, ...; stages after the last one are dropped.
        freeze_at: 0 trains everything, 1 freezes the stem, 2 the stem and ``res2``, etc.
    """

    channels_last_on_cpu = True

    def __init__(
        self,
        *,
        stem: nn.Module,
        stages: Sequence[Sequence[nn.Module]],
        out_features: Sequence[str],
        freeze_at: int = 0,
    ) -> None:
        super().__init__()
        names = ["stem"] + [f"res{i + 2}" for i in range(len(stages))]
        unknown = [f for f in out_features if f not in names]
        if not out_features or unknown:
            raise ValueError(f"out_features must be a non-empty subset of {names}, got {list(out_features)}")
        if not 0 <= freeze_at <= len(stages) + 1:
            raise ValueError(f"freeze_at must be in [0, {len(stages) + 1}], got {freeze_at}")
        self.stem = stem
        num_stages = max(names.index(f) for f in out_features)
        self._out_feature_strides = {"stem": stem.stride}
        self._out_feature_channels = {"stem": stem.out_channels}
        stride = stem.stride
        self.stage_names = []
        for i, blocks in enumerate(stages[:num_stages]):
            name = f"res{i + 2}"
            stage = nn.Sequential(*blocks)
            self.add_module(name, stage)
            self.stage_names.append(name)
            for block in blocks:
                stride *= block.stride
            self._out_feature_strides[name] = stride
            self._out_feature_channels[name] = blocks[-1].out_channels
        self._out_features = list(out_features)
        self.freeze(freeze_at)

    def freeze(self, freeze_at: int) -> ResNet:
        """Freeze the stem (``freeze_at >= 1``) and stages ``res2`` .. ``res{freeze_at}``; returns self."""
        if freeze_at >= 1:
            self.stem.freeze()
        for idx, name in enumerate(self.stage_names, start=2):
            if freeze_at >= idx:
                for block in getattr(self, name).children():
                    block.freeze()
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4:
            raise ValueError(f"ResNet takes Tensor[N, C, H, W], got shape {tuple(x.shape)}")
        outputs = {}
        x = self.stem(x)
        if "stem" in self._out_features:
            outputs["stem"] = x
        for name in self.stage_names:
            x = getattr(self, name)(x)
            if name in self._out_features:
                outputs[name] = x
        return outputs


@attrs.define(frozen=True, kw_only=True)
class ResNetConfig(BackboneConfig):
    """ResNet / ResNeXt (``num_groups > 1``) with optional deformable convolutions per stage."""

    name: ClassVar[str] = "ResNet"
    depth: int = attrs.field(default=50, validator=check.one_of(tuple(RESNET_DEPTHS)))
    num_groups: int = attrs.field(default=1, validator=check.at_least(1))
    width_per_group: int = attrs.field(default=64, validator=check.at_least(1))
    stem_out_channels: int = attrs.field(default=64, validator=check.at_least(1))
    res2_out_channels: int = attrs.field(default=256, validator=check.at_least(1))
    stride_in_1x1: bool = True
    res5_dilation: int = attrs.field(default=1, validator=check.one_of((1, 2)))
    norm: str = attrs.field(default="FrozenBN", validator=check.one_of(NORM_NAMES))
    freeze_at: int = attrs.field(default=2, validator=check.between(0, 5))
    out_features: tuple[str, ...] = attrs.field(
        default=("res2", "res3", "res4", "res5"),
        validator=[check.non_empty, check.subset_of(("stem", "res2", "res3", "res4", "res5"))],
    )
    deform_on_per_stage: tuple[bool, ...] = attrs.field(default=(False,) * 4, validator=check.length(4))
    deform_modulated: bool = False
    deform_num_groups: int = attrs.field(default=1, validator=check.at_least(1))

    def __attrs_post_init__(self) -> None:
        if self.depth in (18, 34):
            if self.res2_out_channels != 64:
                raise ConfigProblem(f"must be 64 for depth {self.depth}", key="res2_out_channels")
            if self.res5_dilation != 1:
                raise ConfigProblem(f"must be 1 for depth {self.depth}", key="res5_dilation")
            if any(self.deform_on_per_stage):
                raise ConfigProblem(
                    f"deformable convs need depth >= 50, got {self.depth}", key="deform_on_per_stage"
                )

    def output_features(self) -> tuple[str, ...]:
        return self.out_features


@BACKBONE_REGISTRY.register(ResNetConfig)
def build_resnet(config: ResNetConfig, input_shape: ShapeSpec) -> ResNet:
    """ResNet/ResNeXt backbone on images of ``input_shape.channels`` channels (3 if unknown)."""
    num_stages = max(["stem", "res2", "res3", "res4", "res5"].index(f) for f in config.out_features)
    stem = BasicStem(input_shape.channels or 3, config.stem_out_channels, config.norm)
    stages = make_resnet_stages(
        depth=config.depth, stem_out_channels=config.stem_out_channels,
        res2_out_channels=config.res2_out_channels, num_groups=config.num_groups,
        width_per_group=config.width_per_group, norm=config.norm, stride_in_1x1=config.stride_in_1x1,
        res5_dilation=config.res5_dilation, deform_on_per_stage=config.deform_on_per_stage,
        deform_modulated=config.deform_modulated, deform_num_groups=config.deform_num_groups,
        num_stages=max(num_stages, 1),
    )  # fmt: skip
    return ResNet(stem=stem, stages=stages, out_features=config.out_features, freeze_at=config.freeze_at)
