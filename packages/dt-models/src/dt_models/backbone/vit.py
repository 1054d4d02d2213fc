"""The plain Vision Transformer as ViTDet uses it (Li et al. 2022, "Exploring Plain Vision Transformer
Backbones for Object Detection"): window attention in most blocks and global attention in a few,
decomposed relative position bias, absolute position embeddings resized to the input, drop path and
optional activation checkpointing. Its config ``ViTConfig`` (registered as ``ViT``), ``build_vit``,
and ``convert_timm_vit_state_dict`` for ImageNet / MAE weights in timm's naming.

Parameter names equal detectron2's (``patch_embed.proj``, ``blocks.{i}.attn.qkv``, ``rel_pos_h``, ...),
so its ViTDet checkpoints load without renaming.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import attrs
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from dt_config import ConfigProblem
from dt_config import validators as check
from dt_models.backbone.backbone import Backbone
from dt_models.backbone.transformer_utils import (
    DropPath,
    Mlp,
    PatchEmbed,
    decomposed_rel_pos_bias,
    get_abs_pos,
    init_transformer_weights,
    window_partition,
    window_unpartition,
)
from dt_models.layers import LayerNorm, ShapeSpec
from dt_models.registry import BACKBONE_REGISTRY, BackboneConfig

__all__ = [
    "ResBottleneckBlock",
    "ViT",
    "ViTAttention",
    "ViTBlock",
    "ViTConfig",
    "build_vit",
    "convert_timm_vit_state_dict",
]


class ViTAttention(nn.Module):
    """Multi-head self-attention on ``Tensor[B, H, W, C]`` tokens, with an optional decomposed relative
    position bias whose tables cover ``input_size`` (interpolated for other sizes)."""

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int,
        qkv_bias: bool = True,
        use_rel_pos: bool = False,
        rel_pos_zero_init: bool = True,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        if use_rel_pos:
            if input_size is None:
                raise ValueError("use_rel_pos needs input_size to size the relative position tables")
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))
            if not rel_pos_zero_init:
                nn.init.trunc_normal_(self.rel_pos_h, std=0.02)
                nn.init.trunc_normal_(self.rel_pos_w, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, _ = x.shape
        tokens = height * width
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, batch * self.num_heads, tokens, -1).unbind(0)  # each [B * nH, N, hd]
        bias = None
        if self.use_rel_pos:
            size = (height, width)
            bias = decomposed_rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, size, size)  # [B*nH, N, N]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # [B * nH, N, hd]
        out = out.view(batch, self.num_heads, height, width, -1).permute(0, 2, 3, 1, 4)
        return self.proj(out.reshape(batch, height, width, -1))


class ResBottleneckBlock(nn.Module):
    """1x1 -> 3x3 -> 1x1 convolutions with channel layer norms and GELU, added to its input
    (ViTDet's optional "residual propagation" after a block); the last norm starts at zero, so the
    block starts as the identity. Works on ``Tensor[B, C, H, W]``."""

    def __init__(self, channels: int, bottleneck_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, bottleneck_channels, 1, bias=False)
        self.norm1 = LayerNorm(bottleneck_channels)
        self.act1 = nn.GELU()
        self.conv2 = nn.Conv2d(bottleneck_channels, bottleneck_channels, 3, padding=1, bias=False)
        self.norm2 = LayerNorm(bottleneck_channels)
        self.act2 = nn.GELU()
        self.conv3 = nn.Conv2d(bottleneck_channels, channels, 1, bias=False)
        self.norm3 = LayerNorm(channels)
        for conv in (self.conv1, self.conv2, self.conv3):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.norm3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.norm1(self.conv1(x)))
        out = self.act2(self.norm2(self.conv2(out)))
        return x + self.norm3(self.conv3(out))


class ViTBlock(nn.Module):
    """Pre-norm transformer block on ``Tensor[B, H, W, C]``: attention (within ``window_size``
    windows, or global when 0) and an MLP, each a residual branch with drop path; then an optional
    convolutional :class:`ResBottleneckBlock`."""

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
        use_rel_pos: bool = False,
        rel_pos_zero_init: bool = True,
        window_size: int = 0,
        use_residual_block: bool = False,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = ViTAttention(
            dim, num_heads=num_heads, qkv_bias=qkv_bias, use_rel_pos=use_rel_pos,
            rel_pos_zero_init=rel_pos_zero_init,
            input_size=(window_size, window_size) if window_size > 0 else input_size,
        )  # fmt: skip
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.residual = ResBottleneckBlock(dim, dim // 2) if use_residual_block else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            hw = (x.shape[1], x.shape[2])
            windows, padded_hw = window_partition(x, self.window_size)  # [B * nW, ws, ws, C]
            x = window_unpartition(self.attn(windows), self.window_size, padded_hw, hw)
        else:
            x = self.attn(x)
        x = shortcut + self.drop_path(x)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        if self.residual is not None:
            x = self.residual(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x


class ViT(Backbone):
    """Plain ViT mapping ``Tensor[N, C, H, W]`` to one map ``{out_feature: Tensor[N, D, H // p, W // p]}``.

    Args:
        img_size: training input size; sizes the relative position tables of global blocks.
        patch_size: ``p``, the patch embedding's kernel and stride (the output stride).
        drop_path_rate: stochastic depth of the last block, rising linearly from 0 at the first.
        window_size: window side (in tokens) of the blocks listed in ``window_block_indexes``.
        residual_block_indexes: blocks followed by a convolutional residual block.
        use_act_checkpoint: recompute each block's activations in backward (less memory) in training.
        pretrain_img_size: the square grid the absolute position embeddings were learnt on.
        pretrain_use_cls_token: the embeddings carry a leading class-token row (dropped).
    """

    def __init__(
        self,
        *,
        img_size: int = 1024,
        patch_size: int = 16,
        in_channels: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-6,
        use_abs_pos: bool = True,
        use_rel_pos: bool = False,
        rel_pos_zero_init: bool = True,
        window_size: int = 0,
        window_block_indexes: Sequence[int] = (),
        residual_block_indexes: Sequence[int] = (),
        use_act_checkpoint: bool = False,
        pretrain_img_size: int = 224,
        pretrain_use_cls_token: bool = True,
        out_feature: str = "last_feat",
    ) -> None:
        super().__init__()
        for label, indexes in (("window", window_block_indexes), ("residual", residual_block_indexes)):
            if any(not 0 <= i < depth for i in indexes):
                raise ValueError(f"{label}_block_indexes must lie in [0, {depth}), got {list(indexes)}")
        self.pretrain_use_cls_token = pretrain_use_cls_token
        self.use_act_checkpoint = use_act_checkpoint
        self.patch_embed = PatchEmbed(
            kernel_size=(patch_size, patch_size), stride=(patch_size, patch_size),
            in_channels=in_channels, embed_dim=embed_dim,
        )  # fmt: skip
        self.pos_embed: nn.Parameter | None = None
        if use_abs_pos:
            num_positions = (pretrain_img_size // patch_size) ** 2 + int(pretrain_use_cls_token)
            self.pos_embed = nn.Parameter(torch.zeros(1, num_positions, embed_dim))
        drop_path_rates = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()  # also under meta
        grid = (img_size // patch_size, img_size // patch_size)
        self.blocks = nn.ModuleList(
            ViTBlock(
                embed_dim,
                num_heads=num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                drop_path=drop_path_rates[i],
                norm_eps=norm_eps,
                use_rel_pos=use_rel_pos,
                rel_pos_zero_init=rel_pos_zero_init,
                window_size=window_size if i in window_block_indexes else 0,
                use_residual_block=i in residual_block_indexes,
                input_size=grid,
            )  # fmt: skip
            for i in range(depth)
        )
        self._out_features = [out_feature]
        self._out_feature_channels = {out_feature: embed_dim}
        self._out_feature_strides = {out_feature: patch_size}
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(init_transformer_weights)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4:
            raise ValueError(f"ViT takes Tensor[N, C, H, W], got shape {tuple(x.shape)}")
        x = self.patch_embed(x)  # [N, H/p, W/p, D]
        if self.pos_embed is not None:
            x = x + get_abs_pos(self.pos_embed, self.pretrain_use_cls_token, (x.shape[1], x.shape[2]))
        recompute = self.use_act_checkpoint and self.training and torch.is_grad_enabled()
        for block in self.blocks:
            x = checkpoint(block, x, use_reentrant=False) if recompute else block(x)
        return {self._out_features[0]: x.permute(0, 3, 1, 2)}


@attrs.define(frozen=True, kw_only=True)
class ViTConfig(BackboneConfig):
    """A plain ViT; defaults are ViTDet's ViT-B (window 14, global attention in blocks 2, 5, 8, 11)."""

    name: ClassVar[str] = "ViT"
    img_size: int = attrs.field(default=1024, validator=check.at_least(1))
    patch_size: int = attrs.field(default=16, validator=check.at_least(1))
    embed_dim: int = attrs.field(default=768, validator=check.at_least(1))
    depth: int = attrs.field(default=12, validator=check.at_least(1))
    num_heads: int = attrs.field(default=12, validator=check.at_least(1))
    mlp_ratio: float = attrs.field(default=4.0, validator=check.greater_than(0.0))
    qkv_bias: bool = True
    drop_path_rate: float = attrs.field(default=0.1, validator=[check.at_least(0.0), check.below(1.0)])
    norm_eps: float = attrs.field(default=1e-6, validator=check.greater_than(0.0))
    use_abs_pos: bool = True
    use_rel_pos: bool = True
    rel_pos_zero_init: bool = True
    window_size: int = attrs.field(default=14, validator=check.at_least(0))
    window_block_indexes: tuple[int, ...] = (0, 1, 3, 4, 6, 7, 9, 10)
    residual_block_indexes: tuple[int, ...] = ()
    use_act_checkpoint: bool = False
    pretrain_img_size: int = attrs.field(default=224, validator=check.at_least(1))
    pretrain_use_cls_token: bool = True
    out_feature: str = attrs.field(default="last_feat", validator=check.non_empty)

    def __attrs_post_init__(self) -> None:
        if self.embed_dim % self.num_heads:
            raise ConfigProblem(
                f"must divide embed_dim ({self.embed_dim}), got {self.num_heads}", key="num_heads"
            )
        for key in ("window_block_indexes", "residual_block_indexes"):
            indexes = getattr(self, key)
            if any(not 0 <= i < self.depth for i in indexes):
                raise ConfigProblem(f"must lie in [0, depth={self.depth}), got {list(indexes)}", key=key)
        if self.window_block_indexes and self.window_size == 0:
            raise ConfigProblem("must be > 0 when window_block_indexes is set", key="window_size")
        if self.img_size < self.patch_size:
            raise ConfigProblem(f"must be at least patch_size ({self.patch_size})", key="img_size")
        if self.use_abs_pos and self.pretrain_img_size < self.patch_size:
            raise ConfigProblem(f"must be at least patch_size ({self.patch_size})", key="pretrain_img_size")

    def output_features(self) -> tuple[str, ...]:
        return (self.out_feature,)


@BACKBONE_REGISTRY.register(ViTConfig)
def build_vit(config: ViTConfig, input_shape: ShapeSpec) -> ViT:
    """ViT on images of ``input_shape.channels`` channels (3 if unknown)."""
    return ViT(
        img_size=config.img_size, patch_size=config.patch_size, in_channels=input_shape.channels or 3,
        embed_dim=config.embed_dim, depth=config.depth, num_heads=config.num_heads,
        mlp_ratio=config.mlp_ratio, qkv_bias=config.qkv_bias, drop_path_rate=config.drop_path_rate,
        norm_eps=config.norm_eps, use_abs_pos=config.use_abs_pos, use_rel_pos=config.use_rel_pos,
        rel_pos_zero_init=config.rel_pos_zero_init, window_size=config.window_size,
        window_block_indexes=config.window_block_indexes,
        residual_block_indexes=config.residual_block_indexes,
        use_act_checkpoint=config.use_act_checkpoint, pretrain_img_size=config.pretrain_img_size,
        pretrain_use_cls_token=config.pretrain_use_cls_token, out_feature=config.out_feature,
    )  # fmt: skip


_TIMM_DROPPED_PREFIXES = ("cls_token", "norm.", "fc_norm.", "head.", "head_drop.", "pre_logits.")
_TIMM_UNSUPPORTED = (
    ".ls1.",
    ".ls2.",
    ".q_norm.",
    ".k_norm.",
    ".norm.",
    "reg_token",
    "attn_pool.",
    "norm_pre.",
)


def convert_timm_vit_state_dict(
    state_dict: Mapping[str, torch.Tensor], *, prefix: str = ""
) -> dict[str, torch.Tensor]:
    """A timm ``VisionTransformer`` (or MAE) state dict renamed for :class:`ViT`, keys under ``prefix``.

    timm's block names equal dt's; the class token, the final norm and the classifier head are
    dropped. ``pos_embed`` is kept as is: build the ViT with ``pretrain_use_cls_token`` set when the
    timm model had a class token (its embeddings then carry a leading class-token row) and with
    ``pretrain_img_size`` the timm model's image size. A checkpoint wrapped as ``{"model": ...}``
    (MAE's release) is unwrapped.

    Raises:
        ValueError: on parts dt's ViT does not have (layer scale, q/k norms, register tokens,
            attention pooling, a pre-norm).
    """
    if "model" in state_dict and isinstance(state_dict["model"], Mapping):
        state_dict = state_dict["model"]
    converted = {}
    for key, value in state_dict.items():
        if key.startswith(_TIMM_DROPPED_PREFIXES):
            continue
        if any(part in f".{key}" for part in _TIMM_UNSUPPORTED):
            raise ValueError(f"timm key {key!r} has no counterpart in dt's ViT (unsupported variant)")
        converted[prefix + key] = value
    return converted
