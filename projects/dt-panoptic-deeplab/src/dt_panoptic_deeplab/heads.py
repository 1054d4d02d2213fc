"""Panoptic-DeepLab's two heads, each on its own DeepLabV3+ decoder (``dt_deeplab``'s):

- ``PanopticDeepLabSemSegHead`` (registered in ``dt_deeplab``'s ``SEM_SEG_HEAD_REGISTRY``): decoder, an
  extra head (two 3x3 convs, or one 5x5 depthwise-separable conv) and a 1x1 predictor of class
  logits; loss ``DeepLabCE`` with per-pixel weights (small instances weigh more);
- ``PanopticDeepLabInsEmbedHead``: decoder, then a centre branch (two 3x3 convs, 1x1 to one heatmap)
  and an offset branch (like the extra head, 1x1 to (dy, dx)); losses: centre MSE and offset L1,
  each averaged over the pixels their weights keep.

Module names are detectron2's (``sem_seg_head.head``, ``ins_embed_head.center_predictor``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from dt_config import validators as check
from dt_deeplab.heads import (
    SEM_SEG_HEAD_REGISTRY,
    DeepLabV3PlusDecoder,
    DeepLabV3PlusHeadConfig,
    SemanticLossMixin,
    build_semantic_loss,
    check_decoder_features,
    fuse_block,
    predictor_conv,
)
from dt_models.layers import NORM_NAMES, ShapeSpec

__all__ = [
    "PanopticDeepLabInsEmbedHead",
    "PanopticDeepLabInsEmbedHeadConfig",
    "PanopticDeepLabSemSegHead",
    "PanopticDeepLabSemSegHeadConfig",
    "build_ins_embed_head",
    "weighted_mean",
]


def weighted_mean(loss: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum(loss * weights) / sum(weights)``; 0 (still attached to the graph) when no weight is set."""
    total = weights.sum()
    weighted = (loss * weights).sum()
    return weighted / total if total > 0 else weighted * 0


class PanopticDeepLabSemSegHead(SemanticLossMixin, DeepLabV3PlusDecoder):
    """Class logits at stride ``common_stride``; ``forward(features, targets, weights)`` returns
    ``(logits upsampled to stride 1 | None, losses)``."""

    def __init__(
        self,
        input_shape: Mapping[str, ShapeSpec],
        *,
        num_classes: int,
        head_channels: int,
        loss: nn.Module,
        common_stride: int,
        loss_weight: float = 1.0,
        **decoder_kwargs,
    ) -> None:
        super().__init__(input_shape, **decoder_kwargs)
        channels = decoder_kwargs["decoder_channels"]
        self.head = fuse_block(
            channels,
            head_channels,
            decoder_kwargs["norm"],
            self.use_depthwise_separable_conv,
            mid_channels=channels,
        )
        self.predictor = predictor_conv(head_channels, num_classes)
        self.loss, self.common_stride, self.loss_weight = loss, common_stride, loss_weight

    def forward(self, features: Mapping[str, torch.Tensor], targets=None, weights=None):
        logits = self.predictor(self.head(self.decode(features)))  # [N, K, H/s, W/s]
        return self.predict_or_loss(logits, targets, weights)


@attrs.define(frozen=True, kw_only=True)
class PanopticDeepLabSemSegHeadConfig(DeepLabV3PlusHeadConfig):
    """The DeepLabV3+ head's fields plus ``head_channels`` of the extra head; Panoptic-DeepLab's
    defaults: decoder on res2, res3, res5 with 32 and 64 projection channels."""

    name: ClassVar[str] = "PanopticDeepLabSemSegHead"
    in_features: tuple[str, ...] = attrs.field(default=("res2", "res3", "res5"), validator=check.non_empty)
    project_channels: tuple[int, ...] = (32, 64)
    head_channels: int = attrs.field(default=256, validator=check.at_least(1))


@SEM_SEG_HEAD_REGISTRY.register(PanopticDeepLabSemSegHeadConfig)
def build_panoptic_sem_seg_head(
    config: PanopticDeepLabSemSegHeadConfig, input_shape: Mapping[str, ShapeSpec]
) -> PanopticDeepLabSemSegHead:
    return PanopticDeepLabSemSegHead(
        {f: input_shape[f] for f in config.in_features},
        num_classes=config.num_classes,
        head_channels=config.head_channels,
        loss=build_semantic_loss(config),
        common_stride=config.common_stride,
        loss_weight=config.loss_weight,
        **config.decoder_kwargs(),
    )


class PanopticDeepLabInsEmbedHead(DeepLabV3PlusDecoder):
    """Centre heatmap and offsets at stride ``common_stride``.

    ``forward(features, center_targets, center_weights, offset_targets, offset_weights)``: in training
    the targets are ``Tensor[N, 1, H, W]`` (centre), ``Tensor[N, 2, H, W]`` (offset, pixels) and weights
    ``Tensor[N, 1, H, W]``; returns ``(None, None, losses)``. At inference returns ``(center
    Tensor[N, 1, H, W], offset Tensor[N, 2, H, W] in input pixels, {})`` at stride 1.
    """

    def __init__(
        self,
        input_shape: Mapping[str, ShapeSpec],
        *,
        head_channels: int,
        common_stride: int,
        center_loss_weight: float,
        offset_loss_weight: float,
        **decoder_kwargs,
    ) -> None:
        super().__init__(input_shape, **decoder_kwargs)
        channels, norm = decoder_kwargs["decoder_channels"], decoder_kwargs["norm"]
        self.center_head = fuse_block(channels, head_channels, norm, False, mid_channels=channels)
        self.center_predictor = predictor_conv(head_channels, 1)
        self.offset_head = fuse_block(
            channels, head_channels, norm, self.use_depthwise_separable_conv, mid_channels=channels
        )
        self.offset_predictor = predictor_conv(head_channels, 2)
        self.common_stride = common_stride
        self.center_loss_weight, self.offset_loss_weight = center_loss_weight, offset_loss_weight

    def _upsample(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.common_stride, mode="bilinear", align_corners=False)

    def forward(
        self,
        features: Mapping[str, torch.Tensor],
        center_targets=None,
        center_weights=None,
        offset_targets=None,
        offset_weights=None,
    ):
        y = self.decode(features)
        center = self._upsample(self.center_predictor(self.center_head(y)))  # [N, 1, H, W]
        offset = (
            self._upsample(self.offset_predictor(self.offset_head(y))) * self.common_stride
        )  # [N, 2, H, W]
        if not self.training:
            return center, offset, {}
        if center_targets is None or offset_targets is None:
            raise ValueError("training needs 'center' and 'offset' targets in every input")
        center_loss = weighted_mean(F.mse_loss(center, center_targets, reduction="none"), center_weights)
        offset_loss = weighted_mean(F.l1_loss(offset, offset_targets, reduction="none"), offset_weights)
        losses = {
            "loss_center": center_loss * self.center_loss_weight,
            "loss_offset": offset_loss * self.offset_loss_weight,
        }
        return None, None, losses


@attrs.define(frozen=True, kw_only=True)
class PanopticDeepLabInsEmbedHeadConfig:
    """The instance head: a DeepLabV3+ decoder (``in_features``, ``project_channels``, ``convs_dim``,
    ASPP fields), ``head_channels`` in the centre/offset branches, the loss weights."""

    in_features: tuple[str, ...] = attrs.field(default=("res2", "res3", "res5"), validator=check.non_empty)
    project_channels: tuple[int, ...] = (32, 64)
    convs_dim: int = attrs.field(default=128, validator=check.at_least(1))
    head_channels: int = attrs.field(default=32, validator=check.at_least(1))
    aspp_channels: int = attrs.field(default=256, validator=check.at_least(1))
    aspp_dilations: tuple[int, int, int] = attrs.field(default=(6, 12, 18), validator=check.length(3))
    aspp_dropout: float = attrs.field(default=0.1, validator=[check.at_least(0.0), check.below(1.0)])
    common_stride: int = attrs.field(default=4, validator=check.at_least(1))
    norm: str = attrs.field(default="BN", validator=check.one_of(NORM_NAMES))
    center_loss_weight: float = attrs.field(default=200.0, validator=check.at_least(0.0))
    offset_loss_weight: float = attrs.field(default=0.01, validator=check.at_least(0.0))
    use_depthwise_separable_conv: bool = False
    train_size: tuple[int, int] | None = None

    def __attrs_post_init__(self) -> None:
        check_decoder_features(self.in_features, self.project_channels)

    def input_features(self) -> dict[str, tuple[str, ...]]:
        return {"in_features": self.in_features}


def build_ins_embed_head(
    config: PanopticDeepLabInsEmbedHeadConfig, input_shape: Mapping[str, ShapeSpec]
) -> PanopticDeepLabInsEmbedHead:
    return PanopticDeepLabInsEmbedHead(
        {f: input_shape[f] for f in config.in_features},
        head_channels=config.head_channels,
        common_stride=config.common_stride,
        center_loss_weight=config.center_loss_weight,
        offset_loss_weight=config.offset_loss_weight,
        project_channels=config.project_channels,
        decoder_channels=config.convs_dim,
        aspp_channels=config.aspp_channels,
        aspp_dilations=config.aspp_dilations,
        aspp_dropout=config.aspp_dropout,
        norm=config.norm,
        train_size=config.train_size,
        use_depthwise_separable_conv=config.use_depthwise_separable_conv,
    )
