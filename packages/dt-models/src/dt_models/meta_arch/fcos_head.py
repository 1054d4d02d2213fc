"""``FCOSHead``: RetinaNet's towers with one prediction per location and a centerness branch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dt_models.layers import Conv2d
from dt_models.meta_arch.retinanet_head import RetinaNetHead

__all__ = ["FCOSHead"]


class FCOSHead(RetinaNetHead):
    """:class:`RetinaNetHead` with one "anchor" (a point) per location, plus ``ctrness``: a 3x3
    convolution on the box tower's output predicting one centerness logit per location.

    Args as for :class:`RetinaNetHead`, without ``num_anchors``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        conv_dims: Sequence[int],
        norm: str = "",
        prior_prob: float = 0.01,
    ) -> None:
        super().__init__(
            in_channels=in_channels, num_classes=num_classes, num_anchors=1, conv_dims=conv_dims,
            norm=norm, prior_prob=prior_prob,
        )  # fmt: skip
        self.ctrness = Conv2d(conv_dims[-1] if conv_dims else in_channels, 1, kernel_size=3, padding=1)
        nn.init.normal_(self.ctrness.weight, std=0.01)
        nn.init.constant_(self.ctrness.bias, 0)

    def forward(
        self, features: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Per level ``Tensor[N, C, Hi, Wi]``: logits ``[N, K, Hi, Wi]``, distances ``[N, 4, Hi, Wi]``
        and centerness logits ``[N, 1, Hi, Wi]``."""
        logits, deltas, ctrness = [], [], []
        for x in features:
            logits.append(self.cls_score(self.cls_subnet(x)))
            box_features = self.bbox_subnet(x)
            deltas.append(self.bbox_pred(box_features))
            ctrness.append(self.ctrness(box_features))
        return logits, deltas, ctrness
