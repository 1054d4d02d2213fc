"""The DeepLab ResNet (``DeepLabResNet``): detectron2's ResNet with a deep stem of three 3x3 convs, a
dilated res4/res5 for output stride 16 or 8, and multi-grid dilations in res5 (Chen et al. 2017).

Output stride 16: ``res5_dilation: 2``; output stride 8: ``res4_dilation: 2, res5_dilation: 4``. The
blocks of res5 use dilations ``res5_dilation * res5_multi_grid[i]`` (``[1, 2, 4]``: 2, 4, 8 at OS 16).
With ``dilate_first_block: false`` the first block of a dilated stage keeps the previous stage's
dilation, torchvision's rule (``replace_stride_with_dilation``): ``stem_type: basic``,
``stem_out_channels: 64``, ``res4_dilation: 2``, ``res5_dilation: 4``, ``res5_multi_grid: [1, 1, 1]``
is the backbone of torchvision's ``deeplabv3_resnet50``/``fcn_resnet50`` (``depth: 101``: the
``*_resnet101``), whose weights ``dt_zoo.convert.torchvision_resnet_to_dt`` converts.
ResNet-101 with the deep stem is the "R-103" of detectron2's DeepLab recipes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from dt_config import ConfigProblem
from dt_config import validators as check
from dt_models.backbone import ResNet
from dt_models.backbone.resnet import BasicStem, BottleneckBlock, DeformBottleneckBlock
from dt_models.layers import NORM_NAMES, Conv2d, FrozenBatchNorm2d, ShapeSpec, get_norm
from dt_models.registry import BACKBONE_REGISTRY, BackboneConfig

from .layers import msra_fill

__all__ = [
    "DeepLabResNet",
    "DeepLabResNetConfig",
    "DeepLabStem",
    "build_deeplab_resnet",
    "make_deeplab_stages",
]

_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
_STAGES = ("stem", "res2", "res3", "res4", "res5")


class DeepLabStem(nn.Module):
    """Three 3x3 convs (stride 2, 1, 1; ``out/2, out/2, out`` channels) with norm and ReLU, then
    3x3/2 max pooling: ``Tensor[N, C, H, W] -> Tensor[N, out_channels, H/4, W/4]``."""

    def __init__(self, in_channels: int = 3, out_channels: int = 128, norm: str = "BN") -> None:
        super().__init__()
        if out_channels % 2:
            raise ValueError(f"DeepLabStem needs an even out_channels, got {out_channels}")
        half = out_channels // 2
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, 4
        self.conv1 = Conv2d(in_channels, half, 3, stride=2, padding=1, bias=False, norm=get_norm(norm, half))
        self.conv2 = Conv2d(half, half, 3, padding=1, bias=False, norm=get_norm(norm, half))
        self.conv3 = Conv2d(half, out_channels, 3, padding=1, bias=False, norm=get_norm(norm, out_channels))
        for conv in (self.conv1, self.conv2, self.conv3):
            msra_fill(conv)

    def freeze(self) -> DeepLabStem:
        """No gradients, batch norms frozen (what ``ResNet.freeze`` asks of a stem). Returns ``self``."""
        for p in self.parameters():
            p.requires_grad = False
        FrozenBatchNorm2d.convert_frozen_batchnorm(self)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu_(self.conv1(x))
        x = F.relu_(self.conv2(x))
        x = F.relu_(self.conv3(x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


def make_deeplab_stages(
    *,
    depth: int,
    num_stages: int,
    stem_out_channels: int,
    res2_out_channels: int = 256,
    num_groups: int = 1,
    width_per_group: int = 64,
    norm: str = "BN",
    stride_in_1x1: bool = False,
    res4_dilation: int = 1,
    res5_dilation: int = 2,
    res5_multi_grid: Sequence[int] = (1, 2, 4),
    deform_on_per_stage: Sequence[bool] = (False,) * 4,
    deform_modulated: bool = False,
    deform_num_groups: int = 1,
    dilate_first_block: bool = True,
) -> list[list[nn.Module]]:
    """Bottleneck blocks of res2 .. res(1 + num_stages). A dilated stage keeps its input's stride; its
    first block has the previous stage's dilation unless ``dilate_first_block``."""
    stages = []
    previous_dilation = 1
    in_channels, out_channels = stem_out_channels, res2_out_channels
    bottleneck_channels = num_groups * width_per_group
    for idx, num_blocks in enumerate(_BLOCKS[depth][:num_stages]):
        dilation = {2: res4_dilation, 3: res5_dilation}.get(idx, 1)
        first_stride = 1 if idx == 0 or dilation > 1 else 2
        dilations = [dilation * g for g in res5_multi_grid] if idx == 3 else [dilation] * num_blocks
        if not dilate_first_block:
            dilations[0] = previous_dilation
        previous_dilation = dilation
        blocks: list[nn.Module] = []
        for i in range(num_blocks):
            kwargs = dict(
                bottleneck_channels=bottleneck_channels,
                stride=first_stride if i == 0 else 1,
                num_groups=num_groups,
                norm=norm,
                stride_in_1x1=stride_in_1x1,
                dilation=dilations[i],
            )
            if deform_on_per_stage[idx]:
                block = DeformBottleneckBlock(
                    in_channels,
                    out_channels,
                    deform_modulated=deform_modulated,
                    deform_num_groups=deform_num_groups,
                    **kwargs,
                )
            else:
                block = BottleneckBlock(in_channels, out_channels, **kwargs)
            blocks.append(block)
            in_channels = out_channels
        stages.append(blocks)
        out_channels *= 2
        bottleneck_channels *= 2
    return stages


class DeepLabResNet(ResNet):
    """A :class:`dt_models.backbone.ResNet` whose inputs are padded to a multiple of its output stride,
    so decoder maps at strides 4 and 16 (or 8) align exactly with the labels."""

    @property
    def size_divisibility(self) -> int:
        return max(self._out_feature_strides[f] for f in self._out_features)


@attrs.define(frozen=True, kw_only=True)
class DeepLabResNetConfig(BackboneConfig):
    """DeepLab's ResNet (depth 50/101/152). ``stem_type: deeplab`` is the three-conv stem (``basic``:
    the 7x7 one); ``res5_multi_grid`` has one dilation factor per res5 block; ``dilate_first_block:
    false`` gives a dilated stage's first block the previous stage's dilation (torchvision's layout)."""

    name: ClassVar[str] = "DeepLabResNet"
    depth: int = attrs.field(default=101, validator=check.one_of(tuple(_BLOCKS)))
    stem_type: str = attrs.field(default="deeplab", validator=check.one_of(("deeplab", "basic")))
    stem_out_channels: int = attrs.field(default=128, validator=check.at_least(2))
    res2_out_channels: int = attrs.field(default=256, validator=check.at_least(1))
    num_groups: int = attrs.field(default=1, validator=check.at_least(1))
    width_per_group: int = attrs.field(default=64, validator=check.at_least(1))
    stride_in_1x1: bool = False
    norm: str = attrs.field(default="BN", validator=check.one_of(NORM_NAMES))
    freeze_at: int = attrs.field(default=0, validator=check.between(0, 5))
    out_features: tuple[str, ...] = attrs.field(
        default=("res2", "res5"), validator=[check.non_empty, check.subset_of(_STAGES)]
    )
    res4_dilation: int = attrs.field(default=1, validator=check.one_of((1, 2)))
    res5_dilation: int = attrs.field(default=2, validator=check.one_of((1, 2, 4)))
    res5_multi_grid: tuple[int, ...] = attrs.field(default=(1, 2, 4), validator=check.length(3))
    deform_on_per_stage: tuple[bool, ...] = attrs.field(default=(False,) * 4, validator=check.length(4))
    deform_modulated: bool = False
    deform_num_groups: int = attrs.field(default=1, validator=check.at_least(1))
    dilate_first_block: bool = True

    def __attrs_post_init__(self) -> None:
        if self.res4_dilation == 2 and self.res5_dilation != 4:
            raise ConfigProblem(
                f"must be 4 when res4_dilation is 2 (output stride 8), got {self.res5_dilation}",
                key="res5_dilation",
            )
        if self.stem_type == "deeplab" and self.stem_out_channels % 2:
            raise ConfigProblem(
                f"the deeplab stem needs an even value, got {self.stem_out_channels}", key="stem_out_channels"
            )
        if any(g < 1 for g in self.res5_multi_grid):
            raise ConfigProblem(
                f"factors must be >= 1, got {list(self.res5_multi_grid)}", key="res5_multi_grid"
            )

    def output_features(self) -> tuple[str, ...]:
        return self.out_features

    @property
    def output_stride(self) -> int:
        """Stride of res5: 32, 16 (res5 dilated) or 8 (res4 and res5 dilated)."""
        return 32 // (self.res4_dilation * min(self.res5_dilation, 2))


@BACKBONE_REGISTRY.register(DeepLabResNetConfig)
def build_deeplab_resnet(config: DeepLabResNetConfig, input_shape: ShapeSpec) -> DeepLabResNet:
    """The DeepLab ResNet on images of ``input_shape.channels`` channels (3 if unknown)."""
    in_channels = input_shape.channels or 3
    if config.stem_type == "deeplab":
        stem: nn.Module = DeepLabStem(in_channels, config.stem_out_channels, config.norm)
    else:
        stem = BasicStem(in_channels, config.stem_out_channels, config.norm)
    num_stages = max(max(_STAGES.index(f) for f in config.out_features), 1)
    stages = make_deeplab_stages(
        depth=config.depth,
        num_stages=num_stages,
        stem_out_channels=config.stem_out_channels,
        res2_out_channels=config.res2_out_channels,
        num_groups=config.num_groups,
        width_per_group=config.width_per_group,
        norm=config.norm,
        stride_in_1x1=config.stride_in_1x1,
        res4_dilation=config.res4_dilation,
        res5_dilation=config.res5_dilation,
        res5_multi_grid=config.res5_multi_grid,
        deform_on_per_stage=config.deform_on_per_stage,
        deform_modulated=config.deform_modulated,
        deform_num_groups=config.deform_num_groups,
        dilate_first_block=config.dilate_first_block,
    )
    return DeepLabResNet(
        stem=stem, stages=stages, out_features=config.out_features, freeze_at=config.freeze_at
    )
