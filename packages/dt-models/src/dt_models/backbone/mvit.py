"""MViTv2 backbones (Li et al. 2022, "MViTv2: Improved Multiscale Vision Transformers"): pooling
attention (queries pooled by 2 at each stage's first block, keys and values by an adaptive stride),
the residual pooling connection, decomposed relative positions and window attention in the early
stages. The configs ``MViTConfig`` (registered as ``MViT``) and ``MViTFPNConfig`` (``MViTFPN``).

Outputs are named ``scale2`` .. ``scale5`` (strides 4 to 32); module names equal detectron2's, so its
MViTv2 checkpoints load without renaming.
"""

from __future__ import annotations

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
    PatchEmbed,
    decomposed_rel_pos_bias,
    get_abs_pos,
    init_transformer_weights,
    window_partition,
    window_unpartition,
)
from dt_models.layers import NORM_NAMES, ShapeSpec
from dt_models.registry import BACKBONE_REGISTRY, BackboneConfig

__all__ = [
    "MViT",
    "MViTConfig",
    "MViTFPNConfig",
    "MultiScaleAttention",
    "MultiScaleBlock",
    "build_mvit",
    "build_mvit_fpn",
]

STAGES = ("scale2", "scale3", "scale4", "scale5")


def _pool(x: torch.Tensor, pool: nn.Module, norm: nn.Module | None = None) -> torch.Tensor:
    """``pool`` (a 2-d op) on channels-last ``Tensor[B, H, W, C]``, then an optional norm."""
    x = pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    return x if norm is None else norm(x)


class MultiScaleAttention(nn.Module):
    """Pooling attention on ``Tensor[B, H, W, dim] -> Tensor[B, H / stride_q, W / stride_q, dim_out]``:
    per head, queries, keys and values are pooled by depthwise ``pool_kernel`` convolutions (strides
    ``stride_q``, ``stride_kv``) and layer-normed; attention runs within windows of ``window_size``
    input tokens when it is > 0; the pooled queries are added back (``residual_pooling``).

    The relative position tables cover ``input_size`` pooled by the smaller stride, and are
    interpolated to the (window) sizes attention sees, as detectron2's MViTv2 does.
    """

    def __init__(
        self,
        dim: int,
        dim_out: int,
        *,
        num_heads: int,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        pool_kernel: tuple[int, int] = (3, 3),
        stride_q: int = 1,
        stride_kv: int = 1,
        residual_pooling: bool = True,
        window_size: int = 0,
        use_rel_pos: bool = False,
        rel_pos_zero_init: bool = True,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim_out // num_heads
        self.qkv = nn.Linear(dim, dim_out * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim_out, dim_out)
        padding = [k // 2 for k in pool_kernel]
        for name, stride in (("q", stride_q), ("k", stride_kv), ("v", stride_kv)):
            pool = nn.Conv2d(
                head_dim, head_dim, pool_kernel, stride=stride, padding=padding, groups=head_dim, bias=False
            )
            self.add_module(f"pool_{name}", pool)
            self.add_module(f"norm_{name}", nn.LayerNorm(head_dim, eps=norm_eps))
        self.window_size = window_size
        self.q_window, self.kv_window = window_size // stride_q, window_size // stride_kv
        self.residual_pooling = residual_pooling
        self.use_rel_pos = use_rel_pos
        if use_rel_pos:
            if input_size is None or input_size[0] != input_size[1]:
                raise ValueError(f"use_rel_pos needs a square input_size, got {input_size}")
            size = input_size[0]
            rel_dim = 2 * max(size // stride_q, size // stride_kv) - 1
            self.rel_pos_h = nn.Parameter(torch.zeros(rel_dim, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(rel_dim, head_dim))
            if not rel_pos_zero_init:
                nn.init.trunc_normal_(self.rel_pos_h, std=0.02)
                nn.init.trunc_normal_(self.rel_pos_w, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, _ = x.shape
        qkv = self.qkv(x).reshape(batch, height, width, 3, self.num_heads, -1).permute(3, 0, 4, 1, 2, 5)
        q, k, v = qkv.reshape(3, batch * self.num_heads, height, width, -1).unbind(0)  # [B*nH, H, W, hd]
        q = _pool(q, self.pool_q, self.norm_q)
        k = _pool(k, self.pool_k, self.norm_k)
        v = _pool(v, self.pool_v, self.norm_v)
        pooled_q = q
        if self.window_size:
            q, q_padded = window_partition(q, self.q_window)
            k, _ = window_partition(k, self.kv_window)
            v, _ = window_partition(v, self.kv_window)
        q_hw, kv_hw = (q.shape[1], q.shape[2]), (k.shape[1], k.shape[2])
        q, k, v = (t.reshape(t.shape[0], -1, t.shape[-1]) for t in (q, k, v))  # [B*nH*nW, N, hd]
        bias = None
        if self.use_rel_pos:
            bias = decomposed_rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, q_hw, kv_hw)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias).view(-1, *q_hw, q.shape[-1])
        if self.window_size:
            out = window_unpartition(out, self.q_window, q_padded, (pooled_q.shape[1], pooled_q.shape[2]))
        if self.residual_pooling:
            out = out + pooled_q
        out_h, out_w = out.shape[1], out.shape[2]
        out = (
            out.view(batch, self.num_heads, out_h, out_w, -1)
            .permute(0, 2, 3, 1, 4)
            .reshape(batch, out_h, out_w, -1)
        )
        return self.proj(out)


class MultiScaleBlock(nn.Module):
    """Pre-norm MViTv2 block on ``Tensor[B, H, W, dim]``; the shortcut is projected to ``dim_out``
    (from the normed input, when the width changes) and max-pooled when queries are (``stride_q > 1``)."""

    def __init__(
        self,
        dim: int,
        dim_out: int,
        *,
        num_heads: int,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
        stride_q: int = 1,
        **attention_options,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = MultiScaleAttention(
            dim, dim_out, num_heads=num_heads, norm_eps=norm_eps, stride_q=stride_q, **attention_options
        )
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim_out, eps=norm_eps)
        self.mlp = Mlp(dim_out, int(dim_out * mlp_ratio))
        self.proj = nn.Linear(dim, dim_out) if dim != dim_out else None
        self.pool_skip = None
        if stride_q > 1:
            self.pool_skip = nn.MaxPool2d(stride_q + 1, stride_q, (stride_q + 1) // 2, ceil_mode=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_norm = self.norm1(x)
        x_block = self.attn(x_norm)
        if self.proj is not None:
            x = self.proj(x_norm)
        if self.pool_skip is not None:
            x = _pool(x, self.pool_skip)
        x = x + self.drop_path(x_block)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class MViT(Backbone):
    """MViTv2 on ``Tensor[N, C, H, W]``: a strided patch embedding, then blocks grouped into four stages
    ending at ``last_block_indexes``; each stage doubles width and heads and halves resolution. Outputs
    the layer-normed ``out_features`` among ``scale2`` .. ``scale5``.

    Args:
        adaptive_kv_stride: key/value pooling stride of the first stage, halved at each next one.
        adaptive_window_size: attention window (tokens) of the first stage, halved at each next one;
            the last blocks of stages 3 to 5 attend globally.
    """

    def __init__(
        self,
        *,
        img_size: int = 224,
        patch_kernel: tuple[int, int] = (7, 7),
        patch_stride: tuple[int, int] = (4, 4),
        patch_padding: tuple[int, int] = (3, 3),
        in_channels: int = 3,
        embed_dim: int = 96,
        depth: int = 16,
        num_heads: int = 1,
        last_block_indexes: Sequence[int] = (0, 2, 11, 15),
        qkv_pool_kernel: tuple[int, int] = (3, 3),
        adaptive_kv_stride: int = 4,
        adaptive_window_size: int = 56,
        residual_pooling: bool = True,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-6,
        use_abs_pos: bool = False,
        use_rel_pos: bool = True,
        rel_pos_zero_init: bool = True,
        use_act_checkpoint: bool = False,
        pretrain_img_size: int = 224,
        pretrain_use_cls_token: bool = True,
        out_features: Sequence[str] = STAGES,
    ) -> None:
        super().__init__()
        last = list(last_block_indexes)
        if len(last) != 4 or last != sorted(set(last)) or last[-1] != depth - 1:
            raise ValueError(
                f"last_block_indexes must be 4 increasing indexes ending at {depth - 1}, got {last}"
            )
        if not out_features or any(f not in STAGES for f in out_features):
            raise ValueError(f"out_features must be among {list(STAGES)}, got {list(out_features)}")
        self.pretrain_use_cls_token = pretrain_use_cls_token
        self.use_act_checkpoint = use_act_checkpoint
        self.patch_embed = PatchEmbed(
            kernel_size=patch_kernel,
            stride=patch_stride,
            padding=patch_padding,
            in_channels=in_channels,
            embed_dim=embed_dim,
        )
        self.pos_embed: nn.Parameter | None = None
        if use_abs_pos:
            num_patches = (pretrain_img_size // patch_stride[0]) * (pretrain_img_size // patch_stride[1])
            self.pos_embed = nn.Parameter(
                torch.zeros(1, num_patches + int(pretrain_use_cls_token), embed_dim)
            )
        rates = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()  # also under meta
        dim, dim_out, heads = embed_dim, embed_dim, num_heads
        stride_kv, window, stride = adaptive_kv_stride, adaptive_window_size, patch_stride[0]
        input_size = (img_size // patch_stride[0], img_size // patch_stride[1])
        self._out_feature_strides, self._out_feature_channels = {}, {}
        self.blocks = nn.ModuleList()
        stage = 2
        for i in range(depth):
            self.blocks.append(
                MultiScaleBlock(
                    dim,
                    dim_out,
                    num_heads=heads,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    drop_path=rates[i],
                    norm_eps=norm_eps,
                    pool_kernel=qkv_pool_kernel,
                    stride_q=2 if i - 1 in last else 1,
                    stride_kv=stride_kv * 2 if i in (last[1], last[2]) else stride_kv,
                    residual_pooling=residual_pooling,
                    window_size=0 if i in last[1:] else window,
                    use_rel_pos=use_rel_pos,
                    rel_pos_zero_init=rel_pos_zero_init,
                    input_size=input_size,
                )
            )
            dim = dim_out
            if i in last:
                name = f"scale{stage}"
                if name in out_features:
                    self._out_feature_channels[name] = dim_out
                    self._out_feature_strides[name] = stride
                    self.add_module(f"{name}_norm", nn.LayerNorm(dim_out, eps=norm_eps))
                dim_out, heads, stride_kv, stride, stage = (
                    dim_out * 2,
                    heads * 2,
                    max(stride_kv // 2, 1),
                    stride * 2,
                    stage + 1,
                )
            if i - 1 in last:
                window //= 2
                input_size = (input_size[0] // 2, input_size[1] // 2)
        self._out_features = list(out_features)
        self._last_block_indexes = tuple(last)
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(init_transformer_weights)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4:
            raise ValueError(f"MViT takes Tensor[N, C, H, W], got shape {tuple(x.shape)}")
        x = self.patch_embed(x)  # [N, H/4, W/4, D]
        if self.pos_embed is not None:
            x = x + get_abs_pos(self.pos_embed, self.pretrain_use_cls_token, (x.shape[1], x.shape[2]))
        recompute = self.use_act_checkpoint and self.training and torch.is_grad_enabled()
        outputs, stage = {}, 2
        for i, block in enumerate(self.blocks):
            x = checkpoint(block, x, use_reentrant=False) if recompute else block(x)
            if i in self._last_block_indexes:
                name = f"scale{stage}"
                if name in self._out_features:
                    outputs[name] = getattr(self, f"{name}_norm")(x).permute(0, 3, 1, 2)
                stage += 1
        return outputs


@attrs.define(frozen=True, kw_only=True)
class MViTConfig(BackboneConfig):
    """MViTv2; defaults are MViTv2-S (depth 16). ViTDet's recipes: B ``depth: 24, last_block_indexes:
    [1, 4, 20, 23]``, L ``embed_dim: 144, num_heads: 2, depth: 48, last_block_indexes: [1, 7, 43, 47]``,
    H ``embed_dim: 192, num_heads: 3, depth: 80, last_block_indexes: [3, 11, 71, 79]``; T is
    ``depth: 10, last_block_indexes: [0, 2, 7, 9]``."""

    name: ClassVar[str] = "MViT"
    img_size: int = attrs.field(default=224, validator=check.at_least(1))
    embed_dim: int = attrs.field(default=96, validator=check.at_least(1))
    depth: int = attrs.field(default=16, validator=check.at_least(4))
    num_heads: int = attrs.field(default=1, validator=check.at_least(1))
    last_block_indexes: tuple[int, ...] = attrs.field(default=(0, 2, 11, 15), validator=check.length(4))
    adaptive_kv_stride: int = attrs.field(default=4, validator=check.at_least(1))
    adaptive_window_size: int = attrs.field(default=56, validator=check.at_least(0))
    residual_pooling: bool = True
    mlp_ratio: float = attrs.field(default=4.0, validator=check.greater_than(0.0))
    qkv_bias: bool = True
    drop_path_rate: float = attrs.field(default=0.0, validator=[check.at_least(0.0), check.below(1.0)])
    norm_eps: float = attrs.field(default=1e-6, validator=check.greater_than(0.0))
    use_abs_pos: bool = False
    use_rel_pos: bool = True
    rel_pos_zero_init: bool = True
    use_act_checkpoint: bool = False
    pretrain_img_size: int = attrs.field(default=224, validator=check.at_least(1))
    pretrain_use_cls_token: bool = True
    out_features: tuple[str, ...] = attrs.field(
        default=STAGES, validator=[check.non_empty, check.subset_of(STAGES)]
    )

    def __attrs_post_init__(self) -> None:
        last = list(self.last_block_indexes)
        if last != sorted(set(last)) or last[0] < 0 or last[-1] != self.depth - 1:
            raise ConfigProblem(
                f"must increase and end at depth - 1 = {self.depth - 1}, got {last}", key="last_block_indexes"
            )

    def output_features(self) -> tuple[str, ...]:
        return self.out_features


@BACKBONE_REGISTRY.register(MViTConfig)
def build_mvit(config: MViTConfig, input_shape: ShapeSpec) -> MViT:
    """MViTv2 on images of ``input_shape.channels`` channels (3 if unknown)."""
    options = attrs.asdict(config)
    return MViT(in_channels=input_shape.channels or 3, **options)


@attrs.define(frozen=True, kw_only=True)
class MViTFPNConfig(BackboneConfig):
    """MViTv2 with an FPN on its stages (``p2`` .. ``p5``), layer-normed, and P6 by subsampling P5, as
    detectron2's ViTDet project builds its MViTv2 Cascade Mask R-CNN (with ``square_pad: 1024``)."""

    name: ClassVar[str] = "MViTFPN"
    mvit: MViTConfig = attrs.field(factory=MViTConfig, validator=check.instance_of(MViTConfig))
    out_channels: int = attrs.field(default=256, validator=check.at_least(1))
    norm: str = attrs.field(default="LN", validator=check.one_of(NORM_NAMES))
    top_block: str = attrs.field(default="max_pool", validator=check.one_of(("max_pool", "")))
    square_pad: int = attrs.field(default=0, validator=check.at_least(0))

    def __attrs_post_init__(self) -> None:
        if self.top_block and self.mvit.out_features[-1] != "scale5":
            raise ConfigProblem(
                "max_pool subsamples p5, so mvit.out_features must end with scale5", key="top_block"
            )

    def output_features(self) -> tuple[str, ...]:
        levels = [int(f[len("scale") :]) for f in self.mvit.out_features]
        if self.top_block:
            levels.append(levels[-1] + 1)
        return tuple(f"p{k}" for k in levels)


@BACKBONE_REGISTRY.register(MViTFPNConfig)
def build_mvit_fpn(config: MViTFPNConfig, input_shape: ShapeSpec) -> FPN:
    """MViTv2 bottom-up + FPN (+ P6 by max pooling)."""
    return FPN(
        bottom_up=build_mvit(config.mvit, input_shape),
        in_features=config.mvit.out_features,
        out_channels=config.out_channels,
        norm=config.norm,
        top_block=LastLevelMaxPool() if config.top_block == "max_pool" else None,
        square_pad=config.square_pad,
    )
