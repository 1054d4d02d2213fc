"""``FastRCNNConvFCHead``: convolutions then fully connected layers on pooled box features; its config
``FastRCNNConvFCHeadConfig`` (registered as ``FastRCNNConvFCHead``) and build function."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dt_config import ConfigProblem
from dt_config import validators as check
from dt_models.layers import NORM_NAMES, Conv2d, ShapeSpec, get_norm
from dt_models.registry import ROI_BOX_HEAD_REGISTRY, BoxHeadConfig

__all__ = ["FastRCNNConvFCHead", "FastRCNNConvFCHeadConfig", "build_fast_rcnn_conv_fc_head"]


class FastRCNNConvFCHead(nn.Module):
    """3x3 convolutions (``conv1``, ...) then linear layers (``fc1``, ...), all followed by ReLU.

    Args:
        input_shape: shape of the pooled features (``channels``, ``height``, ``width``).
        conv_dims: output channels of the convolutions.
        fc_dims: output sizes of the linear layers.
        conv_norm: normalization of the convolutions (``""``: none, with biases).
    """

    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        conv_dims: Sequence[int] = (),
        fc_dims: Sequence[int] = (1024, 1024),
        conv_norm: str = "",
    ) -> None:
        super().__init__()
        if not conv_dims and not fc_dims:
            raise ValueError("FastRCNNConvFCHead needs at least one conv or fc layer")
        self._output_size: int | tuple[int, int, int] = (
            input_shape.channels, input_shape.height, input_shape.width
        )  # fmt: skip
        self.conv_norm_relus = []
        for k, dim in enumerate(conv_dims):
            conv = Conv2d(
                self._output_size[0], dim, 3, padding=1, bias=not conv_norm, norm=get_norm(conv_norm, dim),
                activation=nn.ReLU(),
            )  # fmt: skip
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            if conv.bias is not None:
                nn.init.constant_(conv.bias, 0)
            self.add_module(f"conv{k + 1}", conv)
            self.conv_norm_relus.append(conv)
            self._output_size = (dim, self._output_size[1], self._output_size[2])
        self.fcs = []
        for k, dim in enumerate(fc_dims):
            fc = nn.Linear(int(np.prod(self._output_size)), dim)
            nn.init.kaiming_uniform_(fc.weight, a=1)
            nn.init.constant_(fc.bias, 0)
            self.add_module(f"fc{k + 1}", fc)
            self.fcs.append(fc)
            self._output_size = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[R, C, H, W]`` to ``Tensor[R, fc_dims[-1]]`` (or conv features if there is no fc)."""
        if self.conv_norm_relus and x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)  # faster oneDNN convolutions
        for conv in self.conv_norm_relus:
            x = conv(x)
        if self.fcs:
            x = torch.flatten(x, start_dim=1)
            for fc in self.fcs:
                x = F.relu(fc(x))
        return x

    @property
    def output_shape(self) -> ShapeSpec:
        """Shape of the output: ``ShapeSpec(channels=fc_dim)`` or the conv feature shape."""
        if isinstance(self._output_size, int):
            return ShapeSpec(channels=self._output_size)
        return ShapeSpec(
            channels=self._output_size[0], height=self._output_size[1], width=self._output_size[2]
        )


@attrs.define(frozen=True, kw_only=True)
class FastRCNNConvFCHeadConfig(BoxHeadConfig):
    """``num_conv`` 3x3 convolutions of ``conv_dim`` then ``num_fc`` linear layers of ``fc_dim``."""

    name: ClassVar[str] = "FastRCNNConvFCHead"
    num_conv: int = attrs.field(default=0, validator=check.at_least(0))
    conv_dim: int = attrs.field(default=256, validator=check.at_least(1))
    num_fc: int = attrs.field(default=2, validator=check.at_least(0))
    fc_dim: int = attrs.field(default=1024, validator=check.at_least(1))
    norm: str = attrs.field(default="", validator=check.one_of(NORM_NAMES))

    def __attrs_post_init__(self) -> None:
        if self.num_conv + self.num_fc == 0:
            raise ConfigProblem("num_conv + num_fc must be > 0", key="num_fc")


@ROI_BOX_HEAD_REGISTRY.register(FastRCNNConvFCHeadConfig)
def build_fast_rcnn_conv_fc_head(
    config: FastRCNNConvFCHeadConfig, input_shape: ShapeSpec
) -> FastRCNNConvFCHead:
    """Box head of ``num_conv`` convs and ``num_fc`` fully connected layers."""
    return FastRCNNConvFCHead(
        input_shape, conv_dims=[config.conv_dim] * config.num_conv, fc_dims=[config.fc_dim] * config.num_fc,
        conv_norm=config.norm,
    )  # fmt: skip
