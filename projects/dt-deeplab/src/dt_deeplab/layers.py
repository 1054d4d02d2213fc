"""Convolution blocks of the DeepLab heads: ``DepthwiseSeparableConv2d`` and ``ASPP``
(atrous spatial pyramid pooling, Chen et al. 2017)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from dt_models.layers import Conv2d, get_norm

__all__ = ["ASPP", "DepthwiseSeparableConv2d", "msra_fill", "xavier_fill"]


def xavier_fill(module: nn.Conv2d) -> None:
    """Caffe2's XavierFill (uniform, fan-in scaled) for the weight, zero bias."""
    nn.init.kaiming_uniform_(module.weight, a=1)
    if module.bias is not None:
        nn.init.constant_(module.bias, 0)


def msra_fill(module: nn.Conv2d) -> None:
    """Caffe2's MSRAFill (normal, fan-out scaled for ReLU) for the weight, zero bias."""
    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    if module.bias is not None:
        nn.init.constant_(module.bias, 0)


class DepthwiseSeparableConv2d(nn.Module):
    """A ``kernel_size`` depthwise convolution then a 1x1 pointwise one, each with norm and ReLU
    (MobileNet's placement). ``Tensor[N, in, H, W] -> Tensor[N, out, H, W]`` (stride 1)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        padding: int = 1,
        dilation: int = 1,
        norm: str = "BN",
    ) -> None:
        super().__init__()
        self.depthwise = Conv2d(
            in_channels,
            in_channels,
            kernel_size,
            padding=padding,
            dilation=dilation,
            groups=in_channels,
            bias=not norm,
            norm=get_norm(norm, in_channels),
            activation=F.relu,
        )
        self.pointwise = Conv2d(
            in_channels, out_channels, 1, bias=not norm, norm=get_norm(norm, out_channels), activation=F.relu
        )
        msra_fill(self.depthwise)
        msra_fill(self.pointwise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: a 1x1 conv, three 3x3 convs at ``dilations``, and image pooling
    (average pool, 1x1 conv, upsampled back), concatenated, projected by a 1x1 conv, then dropout.

    ``Tensor[N, in_channels, H, W] -> Tensor[N, out_channels, H, W]``.

    Args:
        pool_kernel_size: ``(kh, kw)`` of the image-pooling average (stride 1); ``None`` pools globally.
            Set it to the training feature size, so that training pools globally and inference keeps
            the same window (detectron2's rule); the input's size must then be a multiple of it.
        dropout: dropout rate on the projected output in training (DeepLab uses 0.1).
        use_depthwise_separable_conv: the 3x3 convs are depthwise separable (DeepLabV3+).
        norm: for every conv but the image-pooling one (a 1x1 map has no batch statistics worth
            normalizing); with no norm the convs have biases.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dilations: Sequence[int],
        *,
        norm: str = "BN",
        pool_kernel_size: tuple[int, int] | None = None,
        dropout: float = 0.0,
        use_depthwise_separable_conv: bool = False,
    ) -> None:
        super().__init__()
        if len(dilations) != 3:
            raise ValueError(f"ASPP takes 3 dilations, got {list(dilations)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.pool_kernel_size = None if pool_kernel_size is None else tuple(pool_kernel_size)
        self.dropout = dropout
        bias = not norm
        self.convs = nn.ModuleList(
            [
                Conv2d(
                    in_channels,
                    out_channels,
                    1,
                    bias=bias,
                    norm=get_norm(norm, out_channels),
                    activation=F.relu,
                )
            ]
        )
        xavier_fill(self.convs[0])
        for dilation in dilations:
            if use_depthwise_separable_conv:
                self.convs.append(
                    DepthwiseSeparableConv2d(
                        in_channels,
                        out_channels,
                        kernel_size=3,
                        padding=dilation,
                        dilation=dilation,
                        norm=norm,
                    )
                )
            else:
                conv = Conv2d(
                    in_channels,
                    out_channels,
                    3,
                    padding=dilation,
                    dilation=dilation,
                    bias=bias,
                    norm=get_norm(norm, out_channels),
                    activation=F.relu,
                )
                xavier_fill(conv)
                self.convs.append(conv)
        pool = (
            nn.AdaptiveAvgPool2d(1) if pool_kernel_size is None else nn.AvgPool2d(pool_kernel_size, stride=1)
        )
        pool_conv = Conv2d(in_channels, out_channels, 1, bias=True, activation=F.relu)
        xavier_fill(pool_conv)
        self.convs.append(nn.Sequential(pool, pool_conv))
        self.project = Conv2d(
            5 * out_channels, out_channels, 1, bias=bias, norm=get_norm(norm, out_channels), activation=F.relu
        )
        xavier_fill(self.project)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        if self.pool_kernel_size is not None and (
            size[0] % self.pool_kernel_size[0] or size[1] % self.pool_kernel_size[1]
        ):
            raise ValueError(
                f"ASPP input of size {tuple(size)} is not a multiple of pool_kernel_size "
                f"{self.pool_kernel_size}"
            )
        branches = [conv(x) for conv in self.convs]  # 5 x [N, out, h, w] (the pooled one smaller)
        branches[-1] = F.interpolate(branches[-1], size=size, mode="bilinear", align_corners=False)
        out = self.project(torch.cat(branches, dim=1))  # [N, out, H, W]
        return F.dropout(out, self.dropout, training=self.training) if self.dropout > 0 else out
