"""DensePose ROI heads: pooled features ``Tensor[R, C, S, S]`` to head features ``Tensor[R, D, S, S]``.

- ``DensePoseV1ConvXHead``: ``num_convs`` 3x3 conv + ReLU layers (``body_conv_fcn1``, ...).
- ``DensePoseDeepLabHead``: an ASPP block (1x1 conv, three atrous 3x3 convs at rates 6, 12, 56,
  image pooling; GroupNorm, ReLU; a 1x1 projection) then ``num_convs`` conv (+ GroupNorm) + ReLU layers.
- ``DensePoseDecoder``: the optional feature decoder run before pooling: per input map, 3x3 conv
  (+ norm) + ReLU layers, each followed by a 2x upsampling until the map reaches ``common_stride``;
  the maps are summed and a 1x1 ``predictor`` conv gives ``Tensor[N, num_classes, H/stride, W/stride]``.

Module names are detectron2's, so its checkpoints load.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from dt_models.layers import Conv2d, get_norm

__all__ = ["ASPP", "DensePoseDecoder", "DensePoseDeepLabHead", "DensePoseV1ConvXHead", "init_conv_params"]


def init_conv_params(module: nn.Module) -> None:
    """Biases 0, weights He-normal (fan out, ReLU): detectron2's DensePose initialization."""
    for name, param in module.named_parameters():
        if name.endswith("bias"):
            nn.init.constant_(param, 0)
        elif name.endswith("weight") and param.dim() > 1:
            nn.init.kaiming_normal_(param, mode="fan_out", nonlinearity="relu")


class DensePoseV1ConvXHead(nn.Module):
    """``num_convs`` ``kernel_size`` convs of ``conv_dim`` channels, each followed by ReLU."""

    def __init__(self, *, in_channels: int, num_convs: int, conv_dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        channels = in_channels
        self.layer_names = []
        for k in range(num_convs):
            self.add_module(
                f"body_conv_fcn{k + 1}", nn.Conv2d(channels, conv_dim, kernel_size, padding=kernel_size // 2)
            )
            self.layer_names.append(f"body_conv_fcn{k + 1}")
            channels = conv_dim
        self.out_channels = channels
        init_conv_params(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.layer_names:
            x = F.relu(getattr(self, name)(x))
        return x


def _conv_gn_relu(in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1) -> nn.Sequential:
    padding = dilation if kernel_size == 3 else 0
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False),
        nn.GroupNorm(32, out_channels),
        nn.ReLU(),
    )


class _ImagePooling(nn.Sequential):
    """Global average, 1x1 conv, GroupNorm, ReLU, upsampled back to the input size."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), *_conv_gn_relu(in_channels, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(super().forward(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: five branches (``convs``) concatenated and projected to
    ``out_channels`` by a 1x1 conv + ReLU (``project``). Channels must be multiples of 32 (GroupNorm)."""

    def __init__(self, in_channels: int, rates: Sequence[int], out_channels: int) -> None:
        super().__init__()
        branches = [_conv_gn_relu(in_channels, out_channels, 1)]
        branches += [_conv_gn_relu(in_channels, out_channels, 3, rate) for rate in rates]
        branches.append(_ImagePooling(in_channels, out_channels))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(
            nn.Conv2d(len(branches) * out_channels, out_channels, 1, bias=False), nn.ReLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


class DensePoseDeepLabHead(nn.Module):
    """ASPP (rates 6, 12, 56, as many channels as the input), then ``num_convs`` convs of ``conv_dim``
    channels with ``norm`` (``"GN"`` or ``""``) and ReLU."""

    def __init__(
        self, *, in_channels: int, num_convs: int, conv_dim: int, kernel_size: int = 3, norm: str = "GN"
    ) -> None:
        super().__init__()
        self.ASPP = ASPP(in_channels, (6, 12, 56), in_channels)
        channels = in_channels
        self.layer_names = []
        for k in range(num_convs):
            conv = Conv2d(
                channels, conv_dim, kernel_size, padding=kernel_size // 2, bias=not norm,
                norm=nn.GroupNorm(32, conv_dim) if norm == "GN" else None,
            )  # fmt: skip
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            if conv.bias is not None:
                nn.init.constant_(conv.bias, 0)
            self.add_module(f"body_conv_fcn{k + 1}", conv)
            self.layer_names.append(f"body_conv_fcn{k + 1}")
            channels = conv_dim
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ASPP(x)
        for name in self.layer_names:
            x = F.relu(getattr(self, name)(x))
        return x


class DensePoseDecoder(nn.Module):
    """Fuses FPN maps into one map at ``common_stride`` (detectron2 DensePose's ``Decoder``).

    Args:
        in_channels, in_strides: per input map (finest first), its channels and stride.
        in_features: the maps' names (the per-map modules are named after them).
        conv_dim: channels of the per-map convs; num_classes: output channels; norm: conv norm.
    """

    def __init__(
        self,
        *,
        in_features: Sequence[str],
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        conv_dim: int,
        num_classes: int,
        norm: str = "",
        common_stride: int = 4,
    ) -> None:
        super().__init__()
        self.in_features = list(in_features)
        for name, channels, stride in zip(in_features, in_channels, in_strides, strict=True):
            ops: list[nn.Module] = []
            for k in range(max(1, int(math.log2(stride) - math.log2(common_stride)))):
                conv = Conv2d(
                    channels if k == 0 else conv_dim, conv_dim, 3, padding=1, bias=not norm,
                    norm=get_norm(norm, conv_dim), activation=F.relu,
                )  # fmt: skip
                nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
                if conv.bias is not None:
                    nn.init.constant_(conv.bias, 0)
                ops.append(conv)
                if stride != common_stride:
                    ops.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.add_module(name, nn.Sequential(*ops))
        self.predictor = nn.Conv2d(conv_dim, num_classes, 1)
        nn.init.kaiming_normal_(self.predictor.weight, mode="fan_out", nonlinearity="relu")
        nn.init.constant_(self.predictor.bias, 0)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """``features`` in ``in_features`` order to ``Tensor[N, num_classes, H/s, W/s]``."""
        out = None
        for name, feature in zip(self.in_features, features, strict=True):
            y = getattr(self, name)(feature)
            out = y if out is None else out + y
        return self.predictor(out)
