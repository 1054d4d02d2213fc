"""Normalization layers: ``FrozenBatchNorm2d``, channel-wise ``LayerNorm`` and the ``get_norm`` factory."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from dt_models.layers.sync_batch_norm import NaiveSyncBatchNorm, SyncBatchNorm

__all__ = ["FrozenBatchNorm2d", "LayerNorm", "NORM_NAMES", "get_norm"]


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine parameters (all buffers, none trained).

    A copy of a trained batch norm (:meth:`convert_frozen_batchnorm`) also keeps its
    ``num_batches_tracked`` buffer, so its state-dict names are detectron2's.

    Computes ``(x - running_mean) / sqrt(running_var + eps) * weight + bias`` per channel on
    ``Tensor[N, C, H, W]``. Checkpoints written by detectron2 (which has the same buffers)
    load directly.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)
        # set only when converted from a batch norm, which then keeps its count (as detectron2 does)
        self.register_buffer("num_batches_tracked", None)

    def scale_and_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scale, shift)``, each ``Tensor[C]``, with ``forward(x) = x * scale + shift`` per channel."""
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad:
            scale, shift = self.scale_and_shift()
            return x * scale.to(x.dtype).view(1, -1, 1, 1) + shift.to(x.dtype).view(1, -1, 1, 1)
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, training=False, eps=self.eps
        )

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        # Checkpoints of torchvision/detectron2 may carry a BatchNorm ``num_batches_tracked``.
        if self.num_batches_tracked is None:
            state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}, eps={self.eps}"

    @classmethod
    def convert_frozen_batchnorm(cls, module: nn.Module) -> nn.Module:
        """Return ``module`` with every ``BatchNorm2d``/``SyncBatchNorm`` replaced by a frozen copy.

        The module is converted in place (its children are replaced) and returned.
        """
        if isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm)):
            frozen = cls(module.num_features, module.eps)
            if module.affine:
                frozen.weight.copy_(module.weight.detach())
                frozen.bias.copy_(module.bias.detach())
            frozen.running_mean.copy_(module.running_mean)
            frozen.running_var.copy_(module.running_var)
            if module.num_batches_tracked is not None:
                frozen.num_batches_tracked = module.num_batches_tracked.detach().clone()
            return frozen
        for name, child in module.named_children():
            converted = cls.convert_frozen_batchnorm(child)
            if converted is not child:
                module.add_module(name, converted)
        return module


class LayerNorm(nn.Module):
    """Layer norm over the channel dimension of ``Tensor[N, C, H, W]`` (as in ConvNeXt)."""

    def __init__(self, normalized_shape: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape))
        self.eps = eps
        self.normalized_shape = (normalized_shape,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


_NORMS: dict[str, Callable[[int], nn.Module]] = {
    "BN": nn.BatchNorm2d,
    "SyncBN": SyncBatchNorm,
    "FrozenBN": FrozenBatchNorm2d,
    "GN": lambda channels: nn.GroupNorm(32, channels),
    "LN": LayerNorm,
    "nnSyncBN": nn.SyncBatchNorm,
    "naiveSyncBN": NaiveSyncBatchNorm,
    "naiveSyncBN_N": lambda channels: NaiveSyncBatchNorm(channels, stats_mode="N"),
}
NORM_NAMES: tuple[str, ...] = ("", *_NORMS)


def get_norm(norm: str | Callable[[int], nn.Module] | None, out_channels: int) -> nn.Module | None:
    """The normalization module for ``out_channels`` channels.

    Args:
        norm: one of ``"BN"``, ``"SyncBN"`` (full-batch statistics across processes, any device),
            ``"FrozenBN"``, ``"GN"`` (32 groups), ``"LN"``, ``"nnSyncBN"`` (``nn.SyncBatchNorm``, CUDA
            only), ``"naiveSyncBN"``/``"naiveSyncBN_N"`` (detectron2's ``NaiveSyncBatchNorm``); ``""`` or
            ``None`` for no normalization; or a callable taking the channel count.
    """
    if norm is None or norm == "":
        return None
    if isinstance(norm, str):
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {list(NORM_NAMES)}, got {norm!r}")
        return _NORMS[norm](out_channels)
    if callable(norm):
        return norm(out_channels)
    raise TypeError(f"norm must be a string or a callable, got {type(norm).__name__}")
