"""Small building blocks: a convolution with optional norm and activation, ``cat``, ``ShapeSpec``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from dt_models.layers.batch_norm import FrozenBatchNorm2d

__all__ = ["Conv2d", "ShapeSpec", "cat", "nonzero_tuple", "shared_channels"]


@dataclass(frozen=True)
class ShapeSpec:
    """Shape of a feature map, without the batch dimension; ``None`` means unknown."""

    channels: int | None = None
    height: int | None = None
    width: int | None = None
    stride: int | None = None


def shared_channels(input_shape: dict[str, ShapeSpec], in_features: Sequence[str], who: str) -> int:
    """The channel count common to the ``in_features`` maps of ``input_shape``; ``ValueError`` naming
    ``who`` (the part that needs it) if they differ."""
    channels = {input_shape[f].channels for f in in_features}
    if len(channels) != 1:
        raise ValueError(
            f"{who} needs feature maps of equal width, got {sorted(channels)} for {list(in_features)}"
        )
    return channels.pop()


def cat(tensors: Sequence[torch.Tensor], dim: int = 0) -> torch.Tensor:
    """``torch.cat`` that returns the tensor itself when given a single one (no copy)."""
    if not isinstance(tensors, (list, tuple)):
        raise TypeError(f"tensors must be a list or tuple of tensors, got {type(tensors).__name__}")
    if len(tensors) == 1:
        return tensors[0]
    return torch.cat(tensors, dim)


def nonzero_tuple(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``x.nonzero(as_tuple=True)`` that also works for 0-d tensors and under tracing."""
    if x.dim() == 0:
        return x.unsqueeze(0).nonzero().unbind(1)
    return x.nonzero().unbind(1)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` followed by an optional normalization module and activation function.

    A ``FrozenBatchNorm2d`` norm is folded into the convolution's weight and bias at each call
    (same result, one pass less over the output; gradients still reach the weight).

    Args:
        norm: a module applied after the convolution (e.g. from :func:`get_norm`), or ``None``.
        activation: a callable applied last (e.g. ``F.relu``), or ``None``.
        Other arguments as for ``nn.Conv2d``.
    """

    def __init__(
        self,
        *args,
        norm: nn.Module | None = None,
        activation: Callable[[torch.Tensor], torch.Tensor] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias, norm = self.weight, self.bias, self.norm
        if isinstance(norm, FrozenBatchNorm2d):
            # fold the frozen affine transform into the convolution: one pass over the output
            scale, shift = norm.scale_and_shift()
            weight = weight * scale.to(weight.dtype).view(-1, 1, 1, 1)
            bias = shift.to(weight.dtype) if bias is None else bias * scale + shift
            norm = None
        x = F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
        if norm is not None:
            x = norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x
