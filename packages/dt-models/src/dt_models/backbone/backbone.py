"""The ``Backbone`` base class: a module mapping an image batch to named feature maps."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod

import torch
from torch import nn

from dt_models.layers import ShapeSpec

__all__ = ["Backbone"]


class Backbone(nn.Module, metaclass=ABCMeta):
    """A network that maps ``Tensor[N, C, H, W]`` to a dict of named feature maps.

    Subclasses set ``_out_features`` (names in output order), ``_out_feature_channels`` and
    ``_out_feature_strides`` (dicts by name), and implement :meth:`forward`.
    """

    _out_features: list[str]
    _out_feature_channels: dict[str, int]
    _out_feature_strides: dict[str, int]

    channels_last_on_cpu: bool = False
    """Whether the model should hand this backbone NHWC (channels-last) images on CPU, where oneDNN
    convolutions run faster on them. Only set it for backbones whose ops all accept NHWC tensors."""

    @abstractmethod
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Map ``Tensor[N, C, H, W]`` to ``{name: Tensor[N, Ci, H / stride_i, W / stride_i]}``."""

    @property
    def size_divisibility(self) -> int:
        """Input height and width must be multiples of this (0: no constraint)."""
        return 0

    @property
    def padding_constraints(self) -> dict[str, int]:
        """Extra padding rules for ``ImageList.from_tensors`` (e.g. ``{"square_size": 1024}``)."""
        return {}

    def output_shape(self) -> dict[str, ShapeSpec]:
        """Channels and stride of each output feature map."""
        return {
            name: ShapeSpec(channels=self._out_feature_channels[name], stride=self._out_feature_strides[name])
            for name in self._out_features
        }
