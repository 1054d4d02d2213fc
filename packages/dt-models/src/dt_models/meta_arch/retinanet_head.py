"""``RetinaNetHead``: the classification and box subnets of RetinaNet, shared by every feature level,
and its config ``RetinaNetHeadConfig``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import torch
from torch import nn

from dt_config import validators as check
from dt_models.layers import NORM_NAMES, Conv2d, CycleBatchNormList, SyncBatchNorm, get_norm

__all__ = ["HEAD_NORMS", "PER_LEVEL_NORMS", "RetinaNetHead", "RetinaNetHeadConfig", "conv_tower"]

HEAD_NORMS = NORM_NAMES
PER_LEVEL_NORMS = {"BN": nn.BatchNorm2d, "SyncBN": SyncBatchNorm}
"""Norms that keep one set of statistics per level in a head shared by all levels (detectron2's
``CycleBatchNormList``): their activations differ too much from level to level to share one."""


def conv_tower(in_channels: int, conv_dims: Sequence[int], norm: str, num_levels: int = 1) -> nn.Sequential:
    """3x3 convolutions (``conv_dims`` output channels each), each followed by ``norm`` (if any) and a
    ReLU, as one ``nn.Sequential`` laid out like detectron2's (conv, [norm,] relu, conv, ...). A
    ``PER_LEVEL_NORMS`` norm is a ``CycleBatchNormList`` over ``num_levels`` levels."""
    layers: list[nn.Module] = []
    for c_in, c_out in zip([in_channels, *conv_dims], conv_dims, strict=False):
        layers.append(Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1))
        if norm in PER_LEVEL_NORMS:
            norm_layer = CycleBatchNormList(num_levels, c_out, bn_class=PER_LEVEL_NORMS[norm])
        else:
            norm_layer = get_norm(norm, c_out)
        if norm_layer is not None:
            layers.append(norm_layer)
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class RetinaNetHead(nn.Module):
    """Two towers of 3x3 convolutions on every level: ``cls_subnet`` + ``cls_score`` (``A*K`` logits
    per location) and ``bbox_subnet`` + ``bbox_pred`` (``A*4`` deltas per location).

    Convolutions start at ``N(0, 0.01)`` with zero bias, except the classification bias, which is
    ``-log((1 - prior_prob) / prior_prob)`` so that every anchor starts with foreground probability
    ``prior_prob`` (the focal-loss paper's initialization, which keeps early training stable).

    Args:
        in_channels: channels of every input map.
        num_classes: K foreground classes.
        num_anchors: A cell anchors per location.
        conv_dims: output channels of each tower convolution.
        norm: normalization after each tower convolution (``""``: none); ``BN``/``SyncBN`` keep
            statistics per level (``CycleBatchNormList``), so ``forward`` must get all ``num_levels``.
        prior_prob: initial foreground probability.
        num_levels: feature levels the head runs on, in order (needed by ``BN``/``SyncBN``).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        num_anchors: int,
        conv_dims: Sequence[int],
        norm: str = "",
        prior_prob: float = 0.01,
        num_levels: int | None = None,
    ) -> None:
        super().__init__()
        if norm in PER_LEVEL_NORMS and num_levels is None:
            raise ValueError(f"norm {norm!r} keeps statistics per level: give num_levels")
        self.num_levels = num_levels
        if not 0.0 < prior_prob < 1.0:
            raise ValueError(f"prior_prob must be in (0, 1), got {prior_prob}")
        last = conv_dims[-1] if conv_dims else in_channels
        self.cls_subnet = conv_tower(in_channels, conv_dims, norm, num_levels or 1)
        self.bbox_subnet = conv_tower(in_channels, conv_dims, norm, num_levels or 1)
        self.cls_score = Conv2d(last, num_anchors * num_classes, kernel_size=3, stride=1, padding=1)
        self.bbox_pred = Conv2d(last, num_anchors * 4, kernel_size=3, stride=1, padding=1)
        for module in (self.cls_subnet, self.bbox_subnet, self.cls_score, self.bbox_pred):
            for layer in module.modules():
                if isinstance(layer, nn.Conv2d):
                    nn.init.normal_(layer.weight, mean=0, std=0.01)
                    nn.init.constant_(layer.bias, 0)
        nn.init.constant_(self.cls_score.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per level ``Tensor[N, C, Hi, Wi]``: logits ``[N, A*K, Hi, Wi]`` and deltas ``[N, A*4, Hi, Wi]``."""
        if self.num_levels is not None and len(features) != self.num_levels:
            raise ValueError(f"the head runs on {self.num_levels} levels, got {len(features)} feature maps")
        logits = [self.cls_score(self.cls_subnet(x)) for x in features]
        deltas = [self.bbox_pred(self.bbox_subnet(x)) for x in features]
        return logits, deltas


@attrs.define(frozen=True, kw_only=True)
class RetinaNetHeadConfig:
    """``RetinaNetHead``: ``num_convs`` tower convolutions as wide as the input (detectron2's
    ``RETINANET.NUM_CONVS``, ``NORM``, ``PRIOR_PROB``)."""

    num_convs: int = attrs.field(default=4, validator=check.at_least(0))
    norm: str = attrs.field(default="", validator=check.one_of(HEAD_NORMS))
    prior_prob: float = attrs.field(default=0.01, validator=check.between(1e-6, 1 - 1e-6))
