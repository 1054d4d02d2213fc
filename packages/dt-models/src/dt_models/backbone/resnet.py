"""ResNet and ResNeXt backbones (He et al. 2016, Xie et al. 2017), with optional deformable convs;
their config ``ResNetConfig`` (registered as ``ResNet``) and ``build_resnet``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs
import torch
from torch import nn
from torch.nn import functional as F

import dt_ops
from dt_config import ConfigProblem
from dt_config import validators as check
from dt_models.backbone.backbone import Backbone
from dt_models.layers import NORM_NAMES, Conv2d, FrozenBatchNorm2d, ShapeSpec, get_norm
from dt_models.registry import BACKBONE_REGISTRY, BackboneConfig

__all__ = [
    "BasicBlock",
    "BasicStem",
    "BottleneckBlock",
    "DeformBottleneckBlock",
    "ResNet",
    "ResNetConfig",
    "build_resnet",
    "make_resnet_stages",
]

RESNET_DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def _msra_fill(module: nn.Module) -> None:
    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    if module.bias is not None:
        nn.init.constant_(module.bias, 0)


class _Block(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def freeze(self) -> _Block:
        """Stop training this block: no gradients, batch norms frozen. Returns ``self``."""
        for p in self.parameters():
            p.requires_grad = False
        FrozenBatchNorm2d.convert_frozen_batchnorm(self)
        return self


class BasicStem(_Block):
    """7x7/2 convolution, norm, ReLU and 3x3/2 max pooling: stride 4."""

    def __init__(self, in_channels: int = 3, out_channels: int = 64, norm: str = "BN") -> None:
        super().__init__(in_channels, out_channels, 4)
        self.conv1 = Conv2d(
            in_channels, out_channels, 7, stride=2, padding=3, bias=False, norm=get_norm(norm, out_channels)
        )
        _msra_fill(self.conv1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu_(self.conv1(x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


def _shortcut(in_channels: int, out_channels: int, stride: int, norm: str) -> Conv2d | None:
    if in_channels == out_channels and stride == 1:
        return None
    conv = Conv2d(in_channels, out_channels, 1, stride=stride, bias=False, norm=get_norm(norm, out_channels))
    _msra_fill(conv)
    return conv


class BasicBlock(_Block):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1, norm: str = "BN") -> None:
        super().__init__(in_channels, out_channels, stride)
        self.shortcut = _shortcut(in_channels, out_channels, stride, norm)
        self.conv1 = Conv2d(
            in_channels,
            out_channels,
            3,
            stride=stride,
            padding=1,
            bias=False,
            norm=get_norm(norm, out_channels),
        )
        self.conv2 = Conv2d(
            out_channels, out_channels, 3, padding=1, bias=False, norm=get_norm(norm, out_channels)
        )
        for conv in (self.conv1, self.conv2):
            _msra_fill(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu_(self.conv1(x)))
        out += x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out)


class BottleneckBlock(_Block):
    """1x1 reduce, 3x3 (grouped, dilated), 1x1 expand, with a residual connection (ResNet-50+).

    Args:
        stride_in_1x1: put the stride in the first 1x1 convolution (MSRA/caffe2 weights) rather
            than in the 3x3 one (torchvision weights).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        bottleneck_channels: int,
        stride: int = 1,
        num_groups: int = 1,
        norm: str = "BN",
        stride_in_1x1: bool = False,
        dilation: int = 1,
    ) -> None:
        super().__init__(in_channels, out_channels, stride)
        self.shortcut = _shortcut(in_channels, out_channels, stride, norm)
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = Conv2d(
            in_channels, bottleneck_channels, 1, stride=stride_1x1, bias=False,
            norm=get_norm(norm, bottleneck_channels),
        )  # fmt: skip
        self.conv2 = self._make_conv2(bottleneck_channels, stride_3x3, num_groups, dilation, norm)
        self.conv3 = Conv2d(
            bottleneck_channels, out_channels, 1, bias=False, norm=get_norm(norm, out_channels)
        )
        for conv in (self.conv1, self.conv2, self.conv3):
            _msra_fill(conv)

    def _make_conv2(self, channels: int, stride: int, groups: int, dilation: int, norm: str) -> nn.Module:
        return Conv2d(
            channels, channels, 3, stride=stride, padding=dilation, bias=False, groups=groups,
            dilation=dilation, norm=get_norm(norm, channels),
        )  # fmt: skip

    def _conv2(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv1(x))
        out = F.relu_(self._conv2(out))
        out = self.conv3(out)
        out += x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out)


class _DeformConv(nn.Module):
    """A 3x3 deformable convolution (v1, or v2 with a modulation mask) followed by a norm."""

    def __init__(
        self, channels: int, *, stride: int, dilation: int, groups: int, norm: nn.Module | None
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, channels // groups, 3, 3))
        self.bias = None
        self.stride, self.dilation = stride, dilation
        self.norm = norm

    def forward(
        self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = dt_ops.deform_conv2d(
            x, offset, self.weight, None, stride=(self.stride,) * 2, padding=(self.dilation,) * 2,
            dilation=(self.dilation,) * 2, mask=mask,
        )  # fmt: skip
        return x if self.norm is None else self.norm(x)


class DeformBottleneckBlock(BottleneckBlock):
    """A bottleneck block whose 3x3 convolution is deformable (v1) or modulated deformable (v2).

    The offsets (and masks) are predicted by ``conv2_offset``, initialized to zero so the block
    starts as a regular bottleneck.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        bottleneck_channels: int,
        stride: int = 1,
        num_groups: int = 1,
        norm: str = "BN",
        stride_in_1x1: bool = False,
        dilation: int = 1,
        deform_modulated: bool = False,
        deform_num_groups: int = 1,
    ) -> None:
        self.deform_modulated = deform_modulated
        self.deform_num_groups = deform_num_groups
        super().__init__(
            in_channels, out_channels, bottleneck_channels=bottleneck_channels, stride=stride,
            num_groups=num_groups, norm=norm, stride_in_1x1=stride_in_1x1, dilation=dilation,
        )  # fmt: skip

    def _make_conv2(self, channels: int, stride: int, groups: int, dilation: int, norm: str) -> nn.Module:
        per_group = 27 if self.deform_modulated else 18  # (dy, dx[, mask]) for each of the 9 taps
        self.conv2_offset = Conv2d(
            channels,
            per_group * self.deform_num_groups,
            3,
            stride=stride,
            padding=dilation,
            dilation=dilation,
        )
        nn.init.constant_(self.conv2_offset.weight, 0)
        nn.init.constant_(self.conv2_offset.bias, 0)
        return _DeformConv(
            channels, stride=stride, dilation=dilation, groups=groups, norm=get_norm(norm, channels)
        )

    def _conv2(self, x: torch.Tensor) -> torch.Tensor:
        if self.deform_modulated:
            offset_mask = self.conv2_offset(x)
            num_offsets = 18 * self.deform_num_groups
            offset, mask = offset_mask[:, :num_offsets], offset_mask[:, num_offsets:].sigmoid()
            return self.conv2(x, offset, mask)
        return self.conv2(x, self.conv2_offset(x))


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
        blocks: list[nn.Module] = []
        for i in range(num_blocks):
            stride = first_stride if i == 0 else 1
            if depth in (18, 34):
                blocks.append(BasicBlock(in_channels, out_channels, stride=stride, norm=norm))
            else:
                kwargs = dict(
                    bottleneck_channels=bottleneck_channels, stride=stride, num_groups=num_groups, norm=norm,
                    stride_in_1x1=stride_in_1x1, dilation=dilation,
                )  # fmt: skip
                if deform_on_per_stage[idx]:
                    blocks.append(
                        DeformBottleneckBlock(
                            in_channels,
                            out_channels,
                            deform_modulated=deform_modulated,
                            deform_num_groups=deform_num_groups,
                            **kwargs,
                        )  # fmt: skip
                    )
                else:
                    blocks.append(BottleneckBlock(in_channels, out_channels, **kwargs))
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
