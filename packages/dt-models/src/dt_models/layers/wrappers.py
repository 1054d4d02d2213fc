"""Small building blocks: a convolution with optional norm and activation, ``cat``, ``ShapeSpec``."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from dt_models.layers.batch_norm import FrozenBatchNorm2d
from dt_ops.winograd import conv3x3_winograd, winograd_available, winograd_is_faster, winograd_weight

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


# DT_WINOGRAD=0 turns off Winograd 3x3 convolutions at inference (Conv2d's docstring says when they run)
WINOGRAD = os.environ.get("DT_WINOGRAD", "1") != "0"


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` followed by an optional normalization module and activation function.

    A ``FrozenBatchNorm2d`` norm is folded into the convolution's weight and bias at each call
    (same result, one pass less over the output; gradients still reach the weight).

    At inference on CPU (no autograd, float32, not traced or compiled), a 3x3 convolution of stride 1
    and padding 1 of a channels-last input large enough to gain (``winograd_is_faster``) runs as dt-ops'
    Winograd F(4x4, 3x3) kernel, with a ReLU activation fused: 0.4-0.9x the time of the direct
    convolution, outputs within ~1e-5 of its magnitude. Its transformed filter (4x the weight's
    memory) is kept until the weight, bias or norm change. ``DT_WINOGRAD=0`` in the environment turns
    this off.

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
        # (parameter versions, packed transformed filter, folded bias) of the Winograd path
        self._winograd: tuple[tuple, torch.Tensor, torch.Tensor | None] | None = None

    def _folded(self) -> tuple[torch.Tensor, torch.Tensor | None, nn.Module | None]:
        """Weight, bias and the norm left to apply: a ``FrozenBatchNorm2d`` is folded into the first two
        (one pass less over the output)."""
        weight, bias, norm = self.weight, self.bias, self.norm
        if isinstance(norm, FrozenBatchNorm2d):
            scale, shift = norm.scale_and_shift()
            weight = weight * scale.to(weight.dtype).view(-1, 1, 1, 1)
            bias = shift.to(weight.dtype) if bias is None else bias * scale + shift
            norm = None
        return weight, bias, norm

    def _runs_winograd(self, x: torch.Tensor) -> bool:
        return (
            WINOGRAD
            and self.kernel_size == (3, 3)
            and self.stride == (1, 1)
            and self.padding == (1, 1)
            and self.dilation == (1, 1)
            and self.groups == 1
            and self.padding_mode == "zeros"
            and (self.norm is None or isinstance(self.norm, FrozenBatchNorm2d))
            and x.is_contiguous(memory_format=torch.channels_last)  # its output is channels-last too
            and winograd_available(x, self.weight)
            and winograd_is_faster(x, self.weight)
        )

    def _winograd_forward(self, x: torch.Tensor) -> torch.Tensor:
        tensors = [self.weight, self.bias, *(self.norm.buffers() if self.norm is not None else ())]
        key = tuple((t.data_ptr(), t._version) for t in tensors if t is not None)
        if self._winograd is None or self._winograd[0] != key:
            weight, bias, _ = self._folded()
            self._winograd = (key, winograd_weight(weight), None if bias is None else bias.detach().clone())
        _, packed, bias = self._winograd
        relu = self.activation is F.relu or isinstance(self.activation, nn.ReLU)
        y = conv3x3_winograd(x, packed, bias, out_channels=self.out_channels, relu=relu)
        return y if relu or self.activation is None else self.activation(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._runs_winograd(x):
            return self._winograd_forward(x)
        weight, bias, norm = self._folded()
        x = F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
        if norm is not None:
            x = norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x
