"""Rotated Region Proposal Network (Ma et al. 2018): ``RRPN`` proposes ``(cx, cy, w, h, angle)`` boxes;
its config ``RRPNConfig`` (registered as ``RRPN``), ``build_rrpn`` and ``find_top_rrpn_proposals``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs
import torch

from dt_config import ConfigProblem
from dt_config import validators as check
from dt_models.box_regression_rotated import Box2BoxTransformRotated
from dt_models.layers import cat, shared_channels
from dt_models.proposal_generator.rpn import RPN, RPNConfig, StandardRPNHead, rpn_training_kwargs
from dt_models.registry import PROPOSAL_GENERATOR_REGISTRY
from dt_models.rotated_anchor_generator import RotatedAnchorGeneratorConfig, build_rotated_anchor_generator
from dt_models.sampling import subsample_labels
from dt_ops import batched_nms_rotated
from dt_structures import Instances, RotatedBoxes, pairwise_iou_rotated

__all__ = ["RRPN", "RRPNConfig", "build_rrpn", "find_top_rrpn_proposals"]


def find_top_rrpn_proposals(
    proposals: list[torch.Tensor],
    pred_objectness_logits: list[torch.Tensor],
    image_sizes: Sequence[tuple[int, int]],
    nms_thresh: float,
    pre_nms_topk: int,
    post_nms_topk: int,
    min_box_size: float,
    training: bool,
) -> list[Instances]:
    """Per image: the ``pre_nms_topk`` best proposals of each level, clipped (nearly horizontal ones
    only, as ``RotatedBoxes.clip``), those with a side <= ``min_box_size`` dropped, rotated NMS per
    level at ``nms_thresh``, then the ``post_nms_topk`` best over all levels.

    Args:
        proposals: per level ``Tensor[N, Hi*Wi*A, 5]``.
        pred_objectness_logits: per level ``Tensor[N, Hi*Wi*A]``.

    Returns:
        per image ``Instances`` with ``proposal_boxes`` (``RotatedBoxes``) and ``objectness_logits``.
    """
    device = proposals[0].device
    batch_idx = torch.arange(len(image_sizes), device=device)
    topk_scores, topk_proposals, level_ids = [], [], []
    for level, (proposals_i, logits_i) in enumerate(zip(proposals, pred_objectness_logits, strict=True)):
        k = min(logits_i.shape[1], pre_nms_topk)
        scores_i, idx = logits_i.topk(k, dim=1)  # [N, k]
        topk_scores.append(scores_i)
        topk_proposals.append(proposals_i[batch_idx[:, None], idx])  # [N, k, 5]
        level_ids.append(torch.full((k,), level, dtype=torch.int64, device=device))
    scores_all, proposals_all, levels_all = (
        cat(topk_scores, dim=1),
        cat(topk_proposals, dim=1),
        cat(level_ids),
    )
    results = []
    for n, image_size in enumerate(image_sizes):
        boxes, scores, levels = RotatedBoxes(proposals_all[n]), scores_all[n], levels_all
        valid = torch.isfinite(boxes.tensor).all(dim=1) & torch.isfinite(scores)
        if not bool(valid.all()):
            if training:
                raise FloatingPointError("predicted boxes or scores contain Inf/NaN: training has diverged")
            boxes, scores, levels = boxes[valid], scores[valid], levels[valid]
        boxes.clip(image_size)
        keep = boxes.nonempty(threshold=min_box_size)
        boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        keep = batched_nms_rotated(boxes.tensor, scores, levels, nms_thresh)[:post_nms_topk]
        result = Instances(image_size)
        result.proposal_boxes = boxes[keep]
        result.objectness_logits = scores[keep]
        results.append(result)
    return results


class RRPN(RPN):
    """:class:`RPN` over rotated anchors: anchors are matched by rotated IoU, deltas are
    ``Box2BoxTransformRotated``'s five, and proposals go through rotated NMS. The anchor boundary
    filter of the RPN does not exist for rotated anchors (``anchor_boundary_thresh`` must be < 0).

    Args as for :class:`RPN`, with a ``RotatedAnchorGenerator`` and a ``Box2BoxTransformRotated``;
    ``forward`` is :meth:`RPN.forward`, with ``RotatedBoxes`` ``gt_boxes`` in ``gt_instances``.
    """

    find_top_proposals = staticmethod(find_top_rrpn_proposals)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        if self.anchor_boundary_thresh >= 0:
            raise ValueError("RRPN has no anchor boundary filter: anchor_boundary_thresh must be < 0")

    @torch.no_grad()
    def label_and_sample_anchors(
        self, anchors: list[RotatedBoxes], gt_instances: list[Instances]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per image: sampled anchor labels ``Tensor[R]`` (1, 0, -1) and matched boxes ``Tensor[R, 5]``."""
        all_anchors = RotatedBoxes.cat(anchors)
        gt_labels, matched_gt_boxes = [], []
        for instances in gt_instances:
            gt_boxes = instances.gt_boxes
            matched_idxs, labels = self.anchor_matcher(pairwise_iou_rotated(gt_boxes, all_anchors))
            labels = labels.to(dtype=torch.int64)
            pos_idx, neg_idx = subsample_labels(labels, self.batch_size_per_image, self.positive_fraction, 0)
            labels = torch.full_like(labels, -1)
            labels[pos_idx] = 1
            labels[neg_idx] = 0
            matched = (
                torch.zeros_like(all_anchors.tensor) if len(gt_boxes) == 0 else gt_boxes.tensor[matched_idxs]
            )
            gt_labels.append(labels)
            matched_gt_boxes.append(matched)
        return gt_labels, matched_gt_boxes


@attrs.define(frozen=True, kw_only=True)
class RRPNConfig(RPNConfig):
    """Rotated RPN: ``RPNConfig`` with rotated anchors (``anchor_generator.angles``), five
    ``bbox_reg_weights`` (``wx, wy, ww, wh, wa``) and the smooth-L1 box loss."""

    name: ClassVar[str] = "RRPN"
    anchor_generator: RotatedAnchorGeneratorConfig = attrs.field(
        factory=RotatedAnchorGeneratorConfig, validator=check.instance_of(RotatedAnchorGeneratorConfig)
    )
    bbox_reg_weights: tuple[float, ...] = attrs.field(
        default=(1.0, 1.0, 1.0, 1.0, 1.0), validator=check.length(5)
    )
    bbox_reg_loss_type: str = attrs.field(default="smooth_l1", validator=check.one_of(("smooth_l1",)))

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if self.boundary_thresh >= 0:
            raise ConfigProblem("RRPN has no anchor boundary filter: must be < 0", key="boundary_thresh")


@PROPOSAL_GENERATOR_REGISTRY.register(RRPNConfig)
def build_rrpn(config: RRPNConfig, input_shape: dict) -> RRPN:
    """Rotated RPN with ``StandardRPNHead`` (5 deltas per anchor) and ``RotatedAnchorGenerator``."""
    anchors = build_rotated_anchor_generator(
        config.anchor_generator, [input_shape[f].stride for f in config.in_features]
    )
    head = StandardRPNHead(
        in_channels=shared_channels(input_shape, config.in_features, "RRPN"),
        num_anchors=anchors.num_cell_anchors[0], box_dim=anchors.box_dim, conv_dims=config.head_conv_dims,
    )  # fmt: skip
    return RRPN(
        in_features=config.in_features,
        head=head,
        anchor_generator=anchors,
        box2box_transform=Box2BoxTransformRotated(config.bbox_reg_weights),
        **rpn_training_kwargs(config),
    )
