"""Swin Transformer backbones (Liu et al. 2021): attention within windows that shift by half a window
in every other block, a relative position bias per window offset, and patch merging between stages
(strides 4 to 32). The configs ``SwinConfig`` (registered as ``Swin``) and ``SwinFPNConfig``
(``SwinFPN``), and their build functions.

Outputs are named ``p0`` .. ``p3`` by stage, and module names equal detectron2's (``layers.0.blocks.1.attn
.relative_position_bias_table``, ``norm0``, ...), so its Swin checkpoints load without renaming.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import attrs
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from dt_config import ConfigProblem
from dt_config import validators as check
from dt_models.backbone.backbone import Backbone
from dt_models.backbone.fpn import FPN, LastLevelMaxPool
from dt_models.backbone.transformer_utils import (
    DropPath,
    Mlp,
    init_transformer_weights,
    window_partition,
    window_unpartition,
)
from dt_models.layers import NORM_NAMES, ShapeSpec
from dt_models.registry import BACKBONE_REGISTRY, BackboneConfig

__all__ = [
    "PatchMerging",
    "SwinConfig",
    "SwinFPNConfig",
    "SwinTransformer",
    "SwinTransformerBlock",
    "build_swin",
    "build_swin_fpn",
    "shifted_window_mask",
]

MASKED = -100.0
"""Logit added between tokens of different regions of a shifted window (Swin's choice, not -inf)."""


class WindowAttention(nn.Module):
    """Multi-head attention within ``Tensor[B * nW, ws * ws, C]`` windows, plus a learnt bias per head
    and relative offset (``(2 ws - 1)^2`` offsets) and an optional ``Tensor[nW, N, N]`` mask."""

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        coords = torch.stack(
            torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")
        )
        relative = (coords.flatten(1)[:, :, None] - coords.flatten(1)[:, None, :]).permute(
            1, 2, 0
        )  # [N, N, 2]
        relative = relative + (window_size - 1)  # offsets from 0 along each axis
        self.register_buffer(
            "relative_position_index", relative[..., 0] * (2 * window_size - 1) + relative[..., 1]
        )
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        windows, tokens, channels = x.shape
        qkv = self.qkv(x).reshape(windows, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each [B * nW, nH, N, hd]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(tokens, tokens, -1).permute(2, 0, 1)  # [nH, N, N]
        if mask is None:
            bias = bias.unsqueeze(0).expand(windows, -1, -1, -1)
        else:
            num_windows = mask.shape[0]
            bias = (bias.unsqueeze(0) + mask.unsqueeze(1)).repeat(windows // num_windows, 1, 1, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))  # [B * nW, nH, N, hd]
        # an explicit copy: the output's strides differ between attention kernels (the CPU flash
        # kernel's make the transposed heads contiguous), so a reshape captured as a view on one
        # kernel's strides fails on the other's (torch.onnx's re-trace of an exported program)
        out = out.transpose(1, 2).clone(memory_format=torch.contiguous_format)  # [B * nW, N, nH, hd]
        return self.proj(out.reshape(windows, tokens, channels))


def shifted_window_mask(
    height: int, width: int, window_size: int, shift: int, device: torch.device
) -> torch.Tensor:
    """``Tensor[nW, ws * ws, ws * ws]``: 0 between tokens of the same region of the cyclically shifted
    ``height x width`` map (multiples of ``window_size``), ``MASKED`` between regions."""
    regions = torch.zeros((1, height, width, 1), device=device)
    bounds = (slice(0, -window_size), slice(-window_size, -shift), slice(-shift, None))
    for index, (rows, cols) in enumerate((r, c) for r in bounds for c in bounds):
        regions[:, rows, cols, :] = index
    labels = window_partition(regions, window_size)[0].view(-1, window_size * window_size)  # [nW, N]
    same = labels.unsqueeze(1) == labels.unsqueeze(2)
    return torch.zeros_like(same, dtype=torch.float32).masked_fill(~same, MASKED)


class SwinTransformerBlock(nn.Module):
    """Pre-norm block on ``Tensor[B, H, W, C]``: (shifted) window attention and an MLP, each residual
    with drop path. The map is zero-padded to multiples of ``window_size`` for the attention."""

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int,
        window_size: int,
        shift_size: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ValueError(f"shift_size must be in [0, {window_size}), got {shift_size}")
        self.window_size, self.shift_size = window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``mask``: :func:`shifted_window_mask` of the padded map (used when the block shifts)."""
        batch, height, width, channels = x.shape
        ws, shift = self.window_size, self.shift_size
        shortcut = x
        x = self.norm1(x)
        x = F.pad(x, (0, 0, 0, (ws - width % ws) % ws, 0, (ws - height % ws) % ws))
        padded_hw = (x.shape[1], x.shape[2])
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        windows = window_partition(x, ws)[0].view(-1, ws * ws, channels)
        windows = self.attn(windows, mask if shift else None).view(-1, ws, ws, channels)
        x = window_unpartition(windows, ws, padded_hw, padded_hw)
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        x = x[:, :height, :width, :]
        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 neighbours concatenated, normed and projected (odd sizes zero-padded):
    ``Tensor[B, H, W, C] -> Tensor[B, ceil(H / 2), ceil(W / 2), 2C]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[1], x.shape[2]
        x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class _SwinStage(nn.Module):
    def __init__(self, blocks: Sequence[SwinTransformerBlock], downsample: PatchMerging | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample


class _PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` convolution on the input zero-padded to multiples of it, then an
    optional layer norm: ``Tensor[B, C, H, W] -> Tensor[B, ceil(H/p), ceil(W/p), D]``."""

    def __init__(self, patch_size: int, in_channels: int, embed_dim: int, norm: bool) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        x = F.pad(x, (0, (p - x.shape[-1] % p) % p, 0, (p - x.shape[-2] % p) % p))
        x = self.proj(x).permute(0, 2, 3, 1)
        return x if self.norm is None else self.norm(x)


class SwinTransformer(Backbone):
    """Swin on ``Tensor[N, C, H, W]``; outputs ``p{i}`` (stage ``i``, stride ``4 * 2**i`` for patch 4,
    ``embed_dim * 2**i`` channels), each layer-normed.

    Args:
        ape: add absolute position embeddings learnt on ``pretrain_img_size`` (bicubically resized).
        frozen_stages: -1 trains everything; 0 freezes the patch embedding, 1 also the position
            embeddings, ``k >= 2`` also stages ``0 .. k - 2``.
        use_checkpoint: recompute each block's activations in backward, in training.
    """

    def __init__(
        self,
        *,
        pretrain_img_size: int = 224,
        patch_size: int = 4,
        in_channels: int = 3,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.2,
        ape: bool = False,
        patch_norm: bool = True,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        frozen_stages: int = -1,
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        if len(depths) != len(num_heads) or any(not 0 <= i < len(depths) for i in out_indices):
            raise ValueError(
                f"need one num_heads per stage and out_indices among them, got {depths}, {num_heads}"
            )
        self.window_size, self.use_checkpoint = window_size, use_checkpoint
        self.out_indices = tuple(out_indices)
        self.patch_embed = _PatchEmbed(patch_size, in_channels, embed_dim, patch_norm)
        self.absolute_pos_embed: nn.Parameter | None = None
        if ape:
            grid = pretrain_img_size // patch_size
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, grid, grid))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()  # also under meta
        self.layers = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads, strict=True)):
            dim = embed_dim * 2**i
            first = sum(depths[:i])
            blocks = [
                SwinTransformerBlock(
                    dim,
                    num_heads=heads,
                    window_size=window_size,
                    shift_size=window_size // 2 if k % 2 else 0,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    drop_path=rates[first + k],
                )
                for k in range(depth)
            ]
            self.layers.append(_SwinStage(blocks, PatchMerging(dim) if i < len(depths) - 1 else None))
        for i in self.out_indices:
            self.add_module(f"norm{i}", nn.LayerNorm(embed_dim * 2**i))
        self._out_features = [f"p{i}" for i in self.out_indices]
        self._out_feature_channels = {f"p{i}": embed_dim * 2**i for i in self.out_indices}
        self._out_feature_strides = {f"p{i}": patch_size * 2**i for i in self.out_indices}
        self.apply(init_transformer_weights)
        self._freeze(frozen_stages)

    def _freeze(self, frozen_stages: int) -> None:
        frozen: list[nn.Module | nn.Parameter] = []
        if frozen_stages >= 0:
            frozen.append(self.patch_embed)
        if frozen_stages >= 1 and self.absolute_pos_embed is not None:
            frozen.append(self.absolute_pos_embed)
        frozen.extend(self.layers[: max(frozen_stages - 1, 0)])
        for part in frozen:
            for p in [part] if isinstance(part, nn.Parameter) else part.parameters():
                p.requires_grad = False

    @property
    def size_divisibility(self) -> int:
        return 32

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4:
            raise ValueError(f"SwinTransformer takes Tensor[N, C, H, W], got shape {tuple(x.shape)}")
        x = self.patch_embed(x)  # [N, H/4, W/4, D]
        if self.absolute_pos_embed is not None:
            pos = F.interpolate(self.absolute_pos_embed, size=x.shape[1:3], mode="bicubic")
            x = x + pos.permute(0, 2, 3, 1)
        outputs = {}
        recompute = self.use_checkpoint and self.training and torch.is_grad_enabled()
        ws = self.window_size
        for i, stage in enumerate(self.layers):
            height, width = x.shape[1], x.shape[2]
            mask = shifted_window_mask(
                math.ceil(height / ws) * ws, math.ceil(width / ws) * ws, ws, ws // 2, x.device
            )
            for block in stage.blocks:
                x = checkpoint(block, x, mask, use_reentrant=False) if recompute else block(x, mask)
            if i in self.out_indices:
                outputs[f"p{i}"] = getattr(self, f"norm{i}")(x).permute(0, 3, 1, 2).contiguous()
            if stage.downsample is not None:
                x = stage.downsample(x)
        return outputs


@attrs.define(frozen=True, kw_only=True)
class SwinConfig(BackboneConfig):
    """A Swin Transformer; defaults are Swin-T. Swin-B: ``embed_dim: 128, depths: [2, 2, 18, 2],
    num_heads: [4, 8, 16, 32]``; Swin-L: ``embed_dim: 192, depths: [2, 2, 18, 2], num_heads:
    [6, 12, 24, 48]`` (detectron2's ViTDet recipes use window 7 and drop path 0.3 / 0.4)."""

    name: ClassVar[str] = "Swin"
    pretrain_img_size: int = attrs.field(default=224, validator=check.at_least(1))
    patch_size: int = attrs.field(default=4, validator=check.at_least(1))
    embed_dim: int = attrs.field(default=96, validator=check.at_least(1))
    depths: tuple[int, ...] = attrs.field(default=(2, 2, 6, 2), validator=check.non_empty)
    num_heads: tuple[int, ...] = attrs.field(default=(3, 6, 12, 24), validator=check.non_empty)
    window_size: int = attrs.field(default=7, validator=check.at_least(2))
    mlp_ratio: float = attrs.field(default=4.0, validator=check.greater_than(0.0))
    qkv_bias: bool = True
    drop_path_rate: float = attrs.field(default=0.2, validator=[check.at_least(0.0), check.below(1.0)])
    ape: bool = False
    patch_norm: bool = True
    out_indices: tuple[int, ...] = attrs.field(default=(0, 1, 2, 3), validator=check.non_empty)
    frozen_stages: int = attrs.field(default=-1, validator=check.at_least(-1))
    use_checkpoint: bool = False

    def __attrs_post_init__(self) -> None:
        if len(self.num_heads) != len(self.depths):
            raise ConfigProblem(f"needs one entry per stage ({len(self.depths)} depths)", key="num_heads")
        for i, heads in enumerate(self.num_heads):
            if (self.embed_dim * 2**i) % heads:
                raise ConfigProblem(
                    f"{heads} heads do not divide stage {i}'s {self.embed_dim * 2**i} channels",
                    key="num_heads",
                )
        if any(not 0 <= i < len(self.depths) for i in self.out_indices):
            raise ConfigProblem(f"must be stage indexes below {len(self.depths)}", key="out_indices")

    def output_features(self) -> tuple[str, ...]:
        return tuple(f"p{i}" for i in self.out_indices)


@BACKBONE_REGISTRY.register(SwinConfig)
def build_swin(config: SwinConfig, input_shape: ShapeSpec) -> SwinTransformer:
    """Swin on images of ``input_shape.channels`` channels (3 if unknown)."""
    return SwinTransformer(
        pretrain_img_size=config.pretrain_img_size,
        patch_size=config.patch_size,
        in_channels=input_shape.channels or 3,
        embed_dim=config.embed_dim,
        depths=config.depths,
        num_heads=config.num_heads,
        window_size=config.window_size,
        mlp_ratio=config.mlp_ratio,
        qkv_bias=config.qkv_bias,
        drop_path_rate=config.drop_path_rate,
        ape=config.ape,
        patch_norm=config.patch_norm,
        out_indices=config.out_indices,
        frozen_stages=config.frozen_stages,
        use_checkpoint=config.use_checkpoint,
    )


@attrs.define(frozen=True, kw_only=True)
class SwinFPNConfig(BackboneConfig):
    """A Swin bottom-up with an FPN on its stages (outputs ``p2`` .. ``p5`` by stride) and P6 by
    subsampling P5, layer-normed, as detectron2's ViTDet project builds its Swin baselines (with
    ``square_pad: 1024``)."""

    name: ClassVar[str] = "SwinFPN"
    swin: SwinConfig = attrs.field(factory=SwinConfig, validator=check.instance_of(SwinConfig))
    out_channels: int = attrs.field(default=256, validator=check.at_least(1))
    norm: str = attrs.field(default="LN", validator=check.one_of(NORM_NAMES))
    top_block: str = attrs.field(default="max_pool", validator=check.one_of(("max_pool", "")))
    square_pad: int = attrs.field(default=0, validator=check.at_least(0))

    def _levels(self) -> list[int]:
        base = int(math.log2(self.swin.patch_size))
        return [base + i for i in self.swin.out_indices]

    def __attrs_post_init__(self) -> None:
        if self.top_block and self._levels()[-1] != 5:
            raise ConfigProblem(
                f"max_pool subsamples p5, but the coarsest level is p{self._levels()[-1]}", key="top_block"
            )

    def output_features(self) -> tuple[str, ...]:
        levels = self._levels()
        if self.top_block:
            levels.append(levels[-1] + 1)
        return tuple(f"p{k}" for k in levels)


@BACKBONE_REGISTRY.register(SwinFPNConfig)
def build_swin_fpn(config: SwinFPNConfig, input_shape: ShapeSpec) -> FPN:
    """Swin bottom-up + FPN (+ P6 by max pooling)."""
    bottom_up = build_swin(config.swin, input_shape)
    return FPN(
        bottom_up=bottom_up,
        in_features=bottom_up._out_features,
        out_channels=config.out_channels,
        norm=config.norm,
        top_block=LastLevelMaxPool() if config.top_block == "max_pool" else None,
        square_pad=config.square_pad,
    )
