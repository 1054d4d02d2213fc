"""``BoxCenterBranch``: an ROI branch predicting where each box's ground-truth centre lies inside it.

Training loss ``loss_center``: smooth-L1 between the predicted and true centre offsets (relative to
the proposal box, in [-1, 1]); inference adds ``pred_centers`` ``Tensor[N, 2]`` (x, y image pixels).
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch
from torch import nn

from dt_config import validators as check
from dt_models.layers import ShapeSpec
from dt_models.poolers import PoolerConfig, build_pooler
from dt_models.registry import ROI_BRANCH_REGISTRY, ROIBranchConfig
from dt_models.roi_heads import ROIBranch
from dt_structures import Instances


@attrs.define(frozen=True, kw_only=True)
class BoxCenterBranchConfig(ROIBranchConfig):
    name: ClassVar[str] = "BoxCenterBranch"
    hidden_dim: int = attrs.field(default=32, validator=check.at_least(1))
    loss_weight: float = attrs.field(default=1.0, validator=check.at_least(0.0))
    pooler: PoolerConfig = attrs.field(factory=lambda: PoolerConfig(resolution=7))


def _offsets(boxes: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``Tensor[R, 2]``: ``points`` relative to ``boxes`` (XYXY): -1 at left/top, 1 at right/bottom."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = ((boxes[:, 2:] - boxes[:, :2]) / 2).clamp(min=1e-3)
    return (points - centre) / half


class BoxCenterBranch(ROIBranch):
    def __init__(self, *, in_features, pooler, inputs: int, hidden_dim: int, loss_weight: float) -> None:
        super().__init__(in_features=in_features, pooler=pooler)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(inputs, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 2)
        )
        self.loss_weight = loss_weight

    def forward(self, pooled: torch.Tensor, instances: list[Instances]):
        offsets = torch.tanh(self.head(pooled))  # [R, 2]
        if self.training:
            boxes = torch.cat([x.proposal_boxes.tensor for x in instances])
            gt = torch.cat([x.gt_boxes.tensor for x in instances])
            target = _offsets(boxes, (gt[:, :2] + gt[:, 2:]) / 2).clamp(-1, 1)
            loss = nn.functional.smooth_l1_loss(offsets, target, beta=0.1, reduction="mean")
            return {"loss_center": self.loss_weight * loss}
        start = 0
        for x in instances:
            boxes = x.pred_boxes.tensor
            mine = offsets[start : start + len(x)]
            start += len(x)
            x.pred_centers = (boxes[:, :2] + boxes[:, 2:]) / 2 + mine * (boxes[:, 2:] - boxes[:, :2]) / 2
        return instances


@ROI_BRANCH_REGISTRY.register(BoxCenterBranchConfig)
def build_box_center_branch(
    config: BoxCenterBranchConfig,
    input_shape: dict[str, ShapeSpec],
    in_features: tuple[str, ...],
    num_classes: int,
) -> BoxCenterBranch:
    return BoxCenterBranch(
        in_features=in_features,
        pooler=build_pooler(config.pooler, in_features, input_shape),
        inputs=input_shape[in_features[0]].channels * config.pooler.resolution**2,
        hidden_dim=config.hidden_dim,
        loss_weight=config.loss_weight,
    )
