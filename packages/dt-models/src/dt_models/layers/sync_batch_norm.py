"""Batch norms whose training statistics span every process of the default process group, on any
device and backend (gloo on CPU included): ``SyncBatchNorm`` (full-batch statistics, as
``nn.SyncBatchNorm``) and ``NaiveSyncBatchNorm`` (detectron2's: an average of per-process statistics).

Outside distributed training (or with one process, or in eval mode) both are ``BatchNorm2d``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["NaiveSyncBatchNorm", "SyncBatchNorm", "differentiable_all_reduce"]


class _AllReduce(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
        grad = grad_output.clone()
        dist.all_reduce(grad)
        return grad


def differentiable_all_reduce(x: torch.Tensor) -> torch.Tensor:
    """The sum of ``x`` over the processes of the default group; its gradient is summed the same way."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return _AllReduce.apply(x)


def _distributed_training(module: nn.Module) -> bool:
    return module.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _normalize(bn: nn.BatchNorm2d, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """``x`` normalised with ``mean``/``var`` ``Tensor[C]`` and ``bn``'s affine parameters."""
    scale = torch.rsqrt(var + bn.eps)
    shift = -mean * scale
    if bn.affine:
        scale, shift = scale * bn.weight, shift * bn.weight + bn.bias
    return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)


def _update_running_stats(bn: nn.BatchNorm2d, mean: torch.Tensor, var: torch.Tensor, momentum: Any) -> None:
    if bn.track_running_stats:
        bn.running_mean += momentum * (mean.detach() - bn.running_mean)
        bn.running_var += momentum * (var.detach() - bn.running_var)
        bn.num_batches_tracked += 1


class SyncBatchNorm(nn.SyncBatchNorm):
    """``nn.SyncBatchNorm`` (same parameters, buffers and checkpoint names) that also synchronises CPU
    tensors: in distributed training the mean and variance are those of the whole batch across
    processes (per-process batch sizes may differ), gradients flow through them, and the running
    variance is updated with the unbiased full-batch variance. CUDA inputs use ``nn.SyncBatchNorm``'s
    own kernels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cuda" or not _distributed_training(self):
            return super().forward(x)
        if x.dim() != 4:
            raise ValueError(f"SyncBatchNorm expects Tensor[N, C, H, W], got shape {tuple(x.shape)}")
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)  # N * H * W
        stats = torch.cat([x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3)), count])
        stats = differentiable_all_reduce(stats)
        channels = x.shape[1]
        total = stats[-1].detach()
        mean = stats[:channels] / total.clamp(min=1)
        var = stats[channels : 2 * channels] / total.clamp(min=1) - mean * mean  # biased, normalises x
        unbiased = var * (total / (total - 1).clamp(min=1))
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked + 1)
        _update_running_stats(self, mean, unbiased, momentum)
        return _normalize(self, x, mean, var)


class NaiveSyncBatchNorm(nn.BatchNorm2d):
    """detectron2's ``NaiveSyncBatchNorm``: in distributed training the per-process mean and mean of
    squares are averaged over processes, equally (``stats_mode=""``: every process must have the same
    batch size) or weighted by batch size (``"N"``); the running variance gets the biased variance.

    Args:
        stats_mode: ``""`` or ``"N"``; other arguments as for ``nn.BatchNorm2d``.
    """

    def __init__(self, *args: Any, stats_mode: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if stats_mode not in ("", "N"):
            raise ValueError(f"stats_mode must be '' or 'N', got {stats_mode!r}")
        self.stats_mode = stats_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _distributed_training(self):
            return super().forward(x)
        batch, channels = x.shape[:2]
        mean = x.mean(dim=(0, 2, 3)) if batch else x.new_zeros(channels)
        meansqr = (x * x).mean(dim=(0, 2, 3)) if batch else x.new_zeros(channels)
        momentum = self.momentum if self.momentum is not None else 0.1
        if self.stats_mode == "":
            stats = differentiable_all_reduce(torch.cat([mean, meansqr])) / dist.get_world_size()
            mean, meansqr = stats[:channels], stats[channels:]
        else:
            weight = x.new_full((1,), float(batch))
            stats = differentiable_all_reduce(torch.cat([mean * batch, meansqr * batch, weight]))
            total = stats[-1].detach()
            momentum = total.clamp(max=1) * momentum  # no update if no process had images
            mean, meansqr = stats[:channels] / total.clamp(min=1), stats[channels:-1] / total.clamp(min=1)
        var = meansqr - mean * mean
        _update_running_stats(self, mean, var, momentum)
        return _normalize(self, x, mean, var)
