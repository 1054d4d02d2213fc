"""RegNet backbones (Radosavovic et al. 2020, "Designing Network Design Spaces"; Dollár et al. 2021):
an AnyNet of stages ``s1``..``s4`` whose widths and depths come from the RegNet parameters
``(w_a, w_0, w_m, depth)``; RegNetY adds squeeze-and-excitation. The configs ``RegNetConfig``
(registered as ``RegNet``) and ``RegNetFPNConfig`` (``RegNetFPN``), and their build functions.

Module names equal detectron2's (``stem.conv``, ``s1.b1.f.a_bn``, ``s2.b1.proj``, ...), so its RegNet
checkpoints load without renaming.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import attrs
import numpy as np
import torch
from torch import nn

from dt_config import ConfigProblem
from dt_config import validators as check
from dt_models.backbone.backbone import Backbone
from dt_models.backbone.fpn import FPN, LastLevelMaxPool
from dt_models.layers import NORM_NAMES, FrozenBatchNorm2d, ShapeSpec, get_norm
from dt_models.registry import BACKBONE_REGISTRY, BackboneConfig

__all__ = [
    "WIDTH_ROUNDINGS",
    "AnyNet",
    "RegNetConfig",
    "RegNetFPNConfig",
    "adjust_block_compatibility",
    "build_regnet",
    "build_regnet_fpn",
    "generate_regnet_parameters",
]

STEM_TYPES = ("simple", "res")
BLOCK_TYPES = ("res_bottleneck", "res_basic", "vanilla")
WIDTH_ROUNDINGS = ("half_even", "half_up")


def _conv(
    w_in: int, w_out: int, kernel: int, *, stride: int = 1, groups: int = 1, bias: bool = False
) -> nn.Conv2d:
    return nn.Conv2d(w_in, w_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=bias)


def _freeze(module: nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad = False
    FrozenBatchNorm2d.convert_frozen_batchnorm(module)


class _Sequential(nn.Module):
    """Runs its children in registration order; carries ``in_channels``, ``out_channels``, ``stride``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = layer(x)
        return x


class SimpleStem(_Sequential):
    """3x3/2 convolution, norm, ReLU: stride 2."""

    def __init__(self, w_in: int, w_out: int, norm: str) -> None:
        super().__init__(w_in, w_out, 2)
        self.conv = _conv(w_in, w_out, 3, stride=2)
        self.bn = get_norm(norm, w_out)
        self.af = nn.ReLU(inplace=True)


class ResStem(_Sequential):
    """7x7/2 convolution, norm, ReLU, 3x3/2 max pooling: stride 4."""

    def __init__(self, w_in: int, w_out: int, norm: str) -> None:
        super().__init__(w_in, w_out, 4)
        self.conv = _conv(w_in, w_out, 7, stride=2)
        self.bn = get_norm(norm, w_out)
        self.af = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)


class SqueezeExcitation(nn.Module):
    """Channel gates ``sigmoid(fc(relu(fc(mean(x)))))`` multiplied into ``x`` (RegNetY)."""

    def __init__(self, w_in: int, w_se: int) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.f_ex = nn.Sequential(
            _conv(w_in, w_se, 1, bias=True),
            nn.ReLU(inplace=True),
            _conv(w_se, w_in, 1, bias=True),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.f_ex(self.avg_pool(x))


class VanillaBlock(_Sequential):
    """[3x3 conv, norm, ReLU] x 2, no residual."""

    def __init__(self, w_in: int, w_out: int, stride: int, norm: str, **_: float) -> None:
        super().__init__(w_in, w_out, stride)
        self.a = _conv(w_in, w_out, 3, stride=stride)
        self.a_bn = get_norm(norm, w_out)
        self.a_af = nn.ReLU(inplace=True)
        self.b = _conv(w_out, w_out, 3)
        self.b_bn = get_norm(norm, w_out)
        self.b_af = nn.ReLU(inplace=True)


class _BasicTransform(_Sequential):
    def __init__(self, w_in: int, w_out: int, stride: int, norm: str) -> None:
        super().__init__(w_in, w_out, stride)
        self.a = _conv(w_in, w_out, 3, stride=stride)
        self.a_bn = get_norm(norm, w_out)
        self.a_af = nn.ReLU(inplace=True)
        self.b = _conv(w_out, w_out, 3)
        self.b_bn = get_norm(norm, w_out)


class _BottleneckTransform(_Sequential):
    def __init__(
        self, w_in: int, w_out: int, stride: int, norm: str, *, bottleneck_ratio: float, group_width: int,
        se_ratio: float,
    ) -> None:  # fmt: skip
        super().__init__(w_in, w_out, stride)
        w_b = int(round(w_out * bottleneck_ratio))
        w_se = int(round(w_in * se_ratio))
        self.a = _conv(w_in, w_b, 1)
        self.a_bn = get_norm(norm, w_b)
        self.a_af = nn.ReLU(inplace=True)
        self.b = _conv(w_b, w_b, 3, stride=stride, groups=w_b // group_width)
        self.b_bn = get_norm(norm, w_b)
        self.b_af = nn.ReLU(inplace=True)
        self.se = SqueezeExcitation(w_b, w_se) if w_se else None
        self.c = _conv(w_b, w_out, 1)
        self.c_bn = get_norm(norm, w_out)


class _ResidualBlock(nn.Module):
    """``relu(shortcut(x) + f(x))`` with a 1x1 projection shortcut when the shape changes."""

    def __init__(self, transform: _Sequential, norm: str) -> None:
        super().__init__()
        w_in, w_out, stride = transform.in_channels, transform.out_channels, transform.stride
        self.in_channels, self.out_channels, self.stride = w_in, w_out, stride
        self.proj, self.bn = None, None
        if w_in != w_out or stride != 1:
            self.proj = _conv(w_in, w_out, 1, stride=stride)
            self.bn = get_norm(norm, w_out)
        self.f = transform
        self.af = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.proj is None else self.bn(self.proj(x))
        return self.af(shortcut + self.f(x))


def make_regnet_block(
    block_type: str, w_in: int, w_out: int, stride: int, norm: str, *, bottleneck_ratio: float = 1.0,
    group_width: int = 1, se_ratio: float = 0.0,
) -> nn.Module:  # fmt: skip
    """One block of ``block_type`` (``res_bottleneck``, ``res_basic`` or ``vanilla``)."""
    if block_type == "vanilla":
        return VanillaBlock(w_in, w_out, stride, norm)
    if block_type == "res_basic":
        return _ResidualBlock(_BasicTransform(w_in, w_out, stride, norm), norm)
    if block_type == "res_bottleneck":
        transform = _BottleneckTransform(
            w_in, w_out, stride, norm, bottleneck_ratio=bottleneck_ratio, group_width=group_width,
            se_ratio=se_ratio,
        )  # fmt: skip
        return _ResidualBlock(transform, norm)
    raise ValueError(f"block_type must be one of {list(BLOCK_TYPES)}, got {block_type!r}")


class AnyNet(Backbone):
    """A stem and stages ``s1``, ``s2``, ... of blocks (``b1``, ``b2``, ...); the first block of each
    stage applies its stride. Outputs the named ``out_features`` among ``stem``, ``s1``, ...

    Args:
        stem: a module with ``out_channels`` and ``stride``.
        stages: per stage, its blocks (each with ``out_channels`` and ``stride``).
        freeze_at: 0 trains everything, 1 freezes the stem, 2 the stem and ``s1``, etc.
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
        names = ["stem"] + [f"s{i + 1}" for i in range(len(stages))]
        if not out_features or any(f not in names for f in out_features):
            raise ValueError(f"out_features must be a non-empty subset of {names}, got {list(out_features)}")
        self.stem = stem
        stride = stem.stride
        self._out_feature_strides = {"stem": stride}
        self._out_feature_channels = {"stem": stem.out_channels}
        self.stage_names: list[str] = []
        for i, blocks in enumerate(stages):
            name = f"s{i + 1}"
            stage = nn.Module()
            for k, block in enumerate(blocks):
                stage.add_module(f"b{k + 1}", block)
                stride *= block.stride
            self.add_module(name, stage)
            self.stage_names.append(name)
            self._out_feature_strides[name] = stride
            self._out_feature_channels[name] = blocks[-1].out_channels
        self.apply(_init_weights)
        self._out_features = list(out_features)
        if not 0 <= freeze_at <= len(stages) + 1:
            raise ValueError(f"freeze_at must be in [0, {len(stages) + 1}], got {freeze_at}")
        if freeze_at >= 1:
            _freeze(self.stem)
        for name in self.stage_names[: max(freeze_at - 1, 0)]:
            _freeze(getattr(self, name))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4:
            raise ValueError(f"AnyNet takes Tensor[N, C, H, W], got shape {tuple(x.shape)}")
        outputs = {}
        x = self.stem(x)
        if "stem" in self._out_features:
            outputs["stem"] = x
        for name in self.stage_names:
            for block in getattr(self, name).children():
                x = block(x)
            if name in self._out_features:
                outputs[name] = x
        return outputs


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
        nn.init.normal_(module.weight, mean=0.0, std=math.sqrt(2.0 / fan_out))
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def generate_regnet_parameters(
    w_a: float, w_0: int, w_m: float, depth: int, quantum: int = 8
) -> tuple[list[int], list[int]]:
    """Per-stage widths and depths of a RegNet: block ``j`` has width ``w_0 + w_a * j``, rounded to
    ``w_0 * w_m ** k`` (integer ``k``) and to a multiple of ``quantum``; equal widths form a stage."""
    if not (w_a >= 0 and w_0 > 0 and w_m > 1 and w_0 % quantum == 0):
        raise ValueError(
            f"RegNet needs w_a >= 0, w_0 > 0 divisible by {quantum}, w_m > 1; got {w_a}, {w_0}, {w_m}"
        )
    widths_continuous = np.arange(depth) * w_a + w_0
    exponents = np.round(np.log(widths_continuous / w_0) / np.log(w_m))
    widths = np.round(w_0 * np.power(w_m, exponents) / quantum).astype(int) * quantum
    stage_widths, stage_depths = np.unique(widths, return_counts=True)
    return stage_widths.tolist(), stage_depths.tolist()


def _round_to_multiple(value: int, multiple: int, rounding: str) -> int:
    """``value`` rounded to a positive multiple of ``multiple``: ``half_even`` as pycls and detectron2
    (Python's ``round``: 392 -> 384 for 16), ``half_up`` as torchvision's RegNet (392 -> 400), which
    also adds one ``multiple`` when rounding down would lose more than 10% of ``value``."""
    if rounding == "half_even":
        return max(multiple, int(round(value / multiple) * multiple))
    if rounding != "half_up":
        raise ValueError(f"rounding must be one of {list(WIDTH_ROUNDINGS)}, got {rounding!r}")
    rounded = max(multiple, (value + multiple // 2) // multiple * multiple)
    return rounded + multiple if rounded < 0.9 * value else rounded


def adjust_block_compatibility(
    widths: Sequence[int], bottleneck_ratios: Sequence[float], group_widths: Sequence[int],
    *, rounding: str = "half_even",
) -> tuple[list[int], list[float], list[int]]:  # fmt: skip
    """Round each stage's width so its bottleneck width is a multiple of its group width (which is
    capped at the bottleneck width); ``rounding`` (``WIDTH_ROUNDINGS``) as in ``_round_to_multiple``."""
    bottleneck = [int(max(1, w * b)) for w, b in zip(widths, bottleneck_ratios, strict=True)]
    groups = [int(min(g, v)) for g, v in zip(group_widths, bottleneck, strict=True)]
    multiples = [int(np.lcm(g, b)) if b > 1 else g for g, b in zip(groups, bottleneck_ratios, strict=True)]
    bottleneck = [_round_to_multiple(v, m, rounding) for v, m in zip(bottleneck, multiples, strict=True)]
    widths = [int(v / b) for v, b in zip(bottleneck, bottleneck_ratios, strict=True)]
    return widths, list(bottleneck_ratios), groups


@attrs.define(frozen=True, kw_only=True)
class RegNetConfig(BackboneConfig):
    """A RegNet; defaults are RegNetX-4GF as detectron2's RegNet-FPN baselines use it. RegNetY-4GF is
    ``depth: 22, w_a: 31.41, w_m: 2.24, group_width: 64, se_ratio: 0.25``. ``width_rounding`` rounds
    each stage width to its group width: ``half_even`` as detectron2 and pycls (and timm), ``half_up``
    as torchvision, whose ``regnet_x_400mf``, ``regnet_y_800mf`` and ``regnet_y_8gf`` have wider stages
    for it."""

    name: ClassVar[str] = "RegNet"
    stem_type: str = attrs.field(default="simple", validator=check.one_of(STEM_TYPES))
    stem_width: int = attrs.field(default=32, validator=check.at_least(1))
    block_type: str = attrs.field(default="res_bottleneck", validator=check.one_of(BLOCK_TYPES))
    depth: int = attrs.field(default=23, validator=check.at_least(1))
    w_a: float = attrs.field(default=38.65, validator=check.at_least(0.0))
    w_0: int = attrs.field(default=96, validator=check.at_least(8))
    w_m: float = attrs.field(default=2.43, validator=check.greater_than(1.0))
    group_width: int = attrs.field(default=40, validator=check.at_least(1))
    bottleneck_ratio: float = attrs.field(default=1.0, validator=check.greater_than(0.0))
    se_ratio: float = attrs.field(default=0.0, validator=check.at_least(0.0))
    width_rounding: str = attrs.field(default="half_even", validator=check.one_of(WIDTH_ROUNDINGS))
    stride: int = attrs.field(default=2, validator=check.at_least(1))
    norm: str = attrs.field(default="FrozenBN", validator=check.one_of(NORM_NAMES))
    freeze_at: int = attrs.field(default=2, validator=check.at_least(0))
    out_features: tuple[str, ...] = attrs.field(default=("s1", "s2", "s3", "s4"), validator=check.non_empty)

    def __attrs_post_init__(self) -> None:
        if self.w_0 % 8:
            raise ConfigProblem(f"must be a multiple of 8, got {self.w_0}", key="w_0")
        names = ("stem", *(f"s{i + 1}" for i in range(self.num_stages())))
        if any(f not in names for f in self.out_features):
            raise ConfigProblem(
                f"must be among {list(names)}, got {list(self.out_features)}", key="out_features"
            )
        if self.freeze_at > len(names):
            raise ConfigProblem(f"must be at most {len(names)}, got {self.freeze_at}", key="freeze_at")

    def stage_specs(self) -> tuple[list[int], list[int], list[int]]:
        """Per-stage (widths, depths, group widths) after the compatibility adjustment."""
        widths, depths = generate_regnet_parameters(self.w_a, self.w_0, self.w_m, self.depth)
        ratios = [self.bottleneck_ratio] * len(widths)
        widths, _, groups = adjust_block_compatibility(
            widths, ratios, [self.group_width] * len(widths), rounding=self.width_rounding
        )
        return widths, depths, groups

    def num_stages(self) -> int:
        return len(generate_regnet_parameters(self.w_a, self.w_0, self.w_m, self.depth)[0])

    def output_features(self) -> tuple[str, ...]:
        return self.out_features


@BACKBONE_REGISTRY.register(RegNetConfig)
def build_regnet(config: RegNetConfig, input_shape: ShapeSpec) -> AnyNet:
    """RegNet on images of ``input_shape.channels`` channels (3 if unknown)."""
    stem_class = SimpleStem if config.stem_type == "simple" else ResStem
    stem = stem_class(input_shape.channels or 3, config.stem_width, config.norm)
    stages, w_in = [], config.stem_width
    for width, depth, group_width in zip(*config.stage_specs(), strict=True):
        blocks = [
            make_regnet_block(
                config.block_type,
                w_in if k == 0 else width,
                width,
                config.stride if k == 0 else 1,
                config.norm,
                bottleneck_ratio=config.bottleneck_ratio,
                group_width=group_width,
                se_ratio=config.se_ratio,
            )  # fmt: skip
            for k in range(depth)
        ]
        stages.append(blocks)
        w_in = width
    return AnyNet(stem=stem, stages=stages, out_features=config.out_features, freeze_at=config.freeze_at)


@attrs.define(frozen=True, kw_only=True)
class RegNetFPNConfig(BackboneConfig):
    """A RegNet bottom-up with an FPN on ``in_features`` and P6 by subsampling P5 (R-CNN)."""

    name: ClassVar[str] = "RegNetFPN"
    regnet: RegNetConfig = attrs.field(factory=RegNetConfig, validator=check.instance_of(RegNetConfig))
    in_features: tuple[str, ...] = attrs.field(default=("s1", "s2", "s3", "s4"), validator=check.non_empty)
    out_channels: int = attrs.field(default=256, validator=check.at_least(1))
    norm: str = attrs.field(default="", validator=check.one_of(NORM_NAMES))
    fuse_type: str = attrs.field(default="sum", validator=check.one_of(("sum", "avg")))
    top_block: str = attrs.field(default="max_pool", validator=check.one_of(("max_pool", "")))

    def __attrs_post_init__(self) -> None:
        missing = [f for f in self.in_features if f not in self.regnet.out_features]
        if missing:
            raise ConfigProblem(
                f"{missing} not among regnet.out_features {list(self.regnet.out_features)}", key="in_features"
            )
        if self.top_block and self._levels()[-1] != 5:
            raise ConfigProblem(
                f"max_pool subsamples p5, but the coarsest input is p{self._levels()[-1]}", key="top_block"
            )

    def _levels(self) -> list[int]:
        """log2 of each input's stride: the stem's, times ``stride`` per stage."""
        stem_level = 1 if self.regnet.stem_type == "simple" else 2
        step = int(math.log2(self.regnet.stride))
        return [stem_level + step * int(f[1:]) for f in self.in_features]

    def output_features(self) -> tuple[str, ...]:
        levels = self._levels()
        if self.top_block:
            levels.append(levels[-1] + 1)
        return tuple(f"p{k}" for k in levels)


@BACKBONE_REGISTRY.register(RegNetFPNConfig)
def build_regnet_fpn(config: RegNetFPNConfig, input_shape: ShapeSpec) -> FPN:
    """RegNet bottom-up + FPN (+ P6 by max pooling)."""
    return FPN(
        bottom_up=build_regnet(config.regnet, input_shape), in_features=config.in_features,
        out_channels=config.out_channels, norm=config.norm, fuse_type=config.fuse_type,
        top_block=LastLevelMaxPool() if config.top_block == "max_pool" else None,
    )  # fmt: skip
