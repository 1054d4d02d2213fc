"""ResNet building blocks: the stem, basic (ResNet-18/34), bottleneck (ResNet-50+, ResNeXt) and
deformable bottleneck blocks, and ``make_bottleneck_stage`` (one stage of bottleneck blocks)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

import dt_ops
from dt_models.layers import Conv2d, FrozenBatchNorm2d, get_norm

__all__ = [
    "BasicBlock",
    "BasicStem",
    "BottleneckBlock",
    "DeformBottleneckBlock",
    "make_bottleneck_stage",
]


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


def make_bottleneck_stage(
    num_blocks: int,
    in_channels: int,
    out_channels: int,
    *,
    first_stride: int,
    deform: bool = False,
    **block_kwargs,
) -> list[BottleneckBlock]:
    """``num_blocks`` bottleneck blocks (deformable ones if ``deform``), the first with stride
    ``first_stride`` and ``in_channels`` inputs; ``block_kwargs`` go to every block."""
    block_class = DeformBottleneckBlock if deform else BottleneckBlock
    if not deform:
        block_kwargs = {k: v for k, v in block_kwargs.items() if not k.startswith("deform_")}
    blocks = []
    for i in range(num_blocks):
        blocks.append(
            block_class(in_channels, out_channels, stride=first_stride if i == 0 else 1, **block_kwargs)
        )
        in_channels = out_channels
    return blocks
