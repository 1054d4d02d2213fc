"""Pieces shared by the transformer backbones (ViT, and later Swin / MViTv2): patch embedding, MLP,
drop path, window partitioning, and absolute / decomposed relative position embeddings.

Tokens are laid out channels-last as ``Tensor[B, H, W, C]`` throughout, as in detectron2's ViTDet.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "DropPath",
    "Mlp",
    "PatchEmbed",
    "decomposed_rel_pos_bias",
    "get_abs_pos",
    "get_rel_pos",
    "init_transformer_weights",
    "window_partition",
    "window_unpartition",
]


class PatchEmbed(nn.Module):
    """Image to patch tokens by one strided convolution: ``Tensor[B, C, H, W] -> Tensor[B, H', W', D]``.

    ``H' = floor((H + 2 * padding - kernel) / stride) + 1``; pixels that do not fill a whole patch
    are dropped, as the convolution does.
    """

    def __init__(
        self,
        *,
        kernel_size: tuple[int, int] = (16, 16),
        stride: tuple[int, int] = (16, 16),
        padding: tuple[int, int] = (0, 0),
        in_channels: int = 3,
        embed_dim: int = 768,
    ) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=kernel_size, stride=stride, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)  # [B, D, H', W'] -> [B, H', W', D]


class Mlp(nn.Module):
    """``fc1 -> GELU -> fc2`` on the last dimension (parameter names as in timm's ``Mlp``)."""

    def __init__(self, in_features: int, hidden_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a whole sample's residual branch with probability ``p``
    and scale the kept ones by ``1 / (1 - p)``; the identity in eval mode or when ``p == 0``."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)  # [B, 1, ..., 1]
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def window_partition(x: torch.Tensor, window_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Split ``Tensor[B, H, W, C]`` into non-overlapping ``window_size`` squares, zero-padding the
    bottom and right to multiples of ``window_size``.

    Returns:
        ``Tensor[B * num_windows, window_size, window_size, C]`` (windows in row-major order per
        image) and the padded size ``(Hp, Wp)``.
    """
    batch, height, width, channels = x.shape
    pad_h = (window_size - height % window_size) % window_size
    pad_w = (window_size - width % window_size) % window_size
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = height + pad_h, width + pad_w
    x = x.view(batch, hp // window_size, window_size, wp // window_size, window_size, channels)
    windows = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, channels)
    return windows, (hp, wp)


def window_unpartition(
    windows: torch.Tensor, window_size: int, padded_hw: tuple[int, int], hw: tuple[int, int]
) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``Tensor[B * num_windows, ws, ws, C] -> Tensor[B, H, W, C]``
    with the padding removed."""
    hp, wp = padded_hw
    height, width = hw
    batch = windows.shape[0] // ((hp // window_size) * (wp // window_size))
    x = windows.view(batch, hp // window_size, wp // window_size, window_size, window_size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(batch, hp, wp, -1)
    if hp > height or wp > width:
        x = x[:, :height, :width, :].contiguous()
    return x


def get_rel_pos(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """Relative position embeddings for every (query, key) pair along one axis.

    Args:
        rel_pos: ``Tensor[L, C]``, one row per relative distance; linearly interpolated to
            ``2 * max(q_size, k_size) - 1`` rows when its length differs.

    Returns:
        ``Tensor[q_size, k_size, C]``. When the sizes differ, the shorter axis's coordinates are
        stretched to the longer one's before taking differences (MViTv2's convention).
    """
    max_rel_dist = 2 * max(q_size, k_size) - 1
    if rel_pos.shape[0] != max_rel_dist:
        resized = F.interpolate(rel_pos.t().unsqueeze(0), size=max_rel_dist, mode="linear")  # [1, C, L']
        rel_pos = resized.squeeze(0).t()  # [L', C]
    q_coords = torch.arange(q_size, device=rel_pos.device)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size, device=rel_pos.device)[None, :] * max(q_size / k_size, 1.0)
    relative = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)  # [q, k], >= 0
    return rel_pos[relative.long()]


def decomposed_rel_pos_bias(
    q: torch.Tensor,
    rel_pos_h: torch.Tensor,
    rel_pos_w: torch.Tensor,
    q_size: tuple[int, int],
    k_size: tuple[int, int],
) -> torch.Tensor:
    """MViTv2's decomposed relative position bias, to add to attention logits.

    ``bias[b, (qh, qw), (kh, kw)] = q[b, (qh, qw)] . Rh[qh, kh] + q[b, (qh, qw)] . Rw[qw, kw]``.

    Args:
        q: ``Tensor[B, q_h * q_w, C]`` queries, unscaled (``B`` counts heads and windows).
        rel_pos_h, rel_pos_w: ``Tensor[L, C]`` tables for the height and width axes.

    Returns:
        ``Tensor[B, q_h * q_w, k_h * k_w]``.
    """
    (q_h, q_w), (k_h, k_w) = q_size, k_size
    rh = get_rel_pos(q_h, k_h, rel_pos_h)  # [q_h, k_h, C]
    rw = get_rel_pos(q_w, k_w, rel_pos_w)  # [q_w, k_w, C]
    batch, _, dim = q.shape
    r_q = q.reshape(batch, q_h, q_w, dim)
    rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, rh)  # [B, q_h, q_w, k_h]
    rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, rw)  # [B, q_h, q_w, k_w]
    bias = rel_h[..., :, None] + rel_w[..., None, :]  # [B, q_h, q_w, k_h, k_w]
    return bias.reshape(batch, q_h * q_w, k_h * k_w)


def get_abs_pos(abs_pos: torch.Tensor, has_cls_token: bool, hw: tuple[int, int]) -> torch.Tensor:
    """Absolute position embeddings for an ``H x W`` token grid.

    Args:
        abs_pos: ``Tensor[1, num_positions, C]`` learnt on a square grid (plus a leading class-token
            row when ``has_cls_token``, which is dropped).

    Returns:
        ``Tensor[1, H, W, C]``, resized bicubically (``align_corners=False``, no antialiasing) when
        the grid differs from the pretraining one.
    """
    height, width = hw
    if has_cls_token:
        abs_pos = abs_pos[:, 1:]
    num_positions = abs_pos.shape[1]
    size = math.isqrt(num_positions)
    if size * size != num_positions:
        raise ValueError(f"position embeddings must cover a square grid, got {num_positions} positions")
    grid = abs_pos.reshape(1, size, size, -1)
    if (size, size) == (height, width):
        return grid
    resized = F.interpolate(
        grid.permute(0, 3, 1, 2), size=(height, width), mode="bicubic", align_corners=False
    )
    return resized.permute(0, 2, 3, 1)


def init_transformer_weights(module: nn.Module) -> None:
    """ViT-style initialization, for ``model.apply``: truncated normal (std 0.02) linear weights,
    zero biases, unit layer norms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
