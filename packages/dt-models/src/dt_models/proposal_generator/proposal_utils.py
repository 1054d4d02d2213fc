"""Selecting RPN proposals (top-k per level, NMS, top-k per image) and adding ground truth to them."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from dt_models.layers import cat
from dt_ops import batched_nms
from dt_structures import Boxes, Instances

__all__ = ["add_ground_truth_to_proposals", "clip_boxes", "find_top_rpn_proposals", "nonempty_boxes"]

# logit of a probability of (almost) 1: ground-truth boxes added to proposals look certain
_GT_LOGIT = math.log((1.0 - 1e-10) / (1 - (1.0 - 1e-10)))


def clip_boxes(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """XYXY ``boxes`` ``Tensor[N, 4]`` clipped to an ``(h, w)`` image; a new tensor."""
    h, w = image_size
    x1 = boxes[:, 0].clamp(min=0, max=w)
    y1 = boxes[:, 1].clamp(min=0, max=h)
    x2 = boxes[:, 2].clamp(min=0, max=w)
    y2 = boxes[:, 3].clamp(min=0, max=h)
    return torch.stack((x1, y1, x2, y2), dim=-1)


def nonempty_boxes(boxes: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """``Tensor[N]`` bool: boxes whose width and height are both > ``threshold``."""
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    return (widths > threshold) & (heights > threshold)


def find_top_rpn_proposals(
    proposals: Sequence[torch.Tensor],
    pred_objectness_logits: Sequence[torch.Tensor],
    image_sizes: Sequence[tuple[int, int]],
    nms_thresh: float,
    pre_nms_topk: int,
    post_nms_topk: int,
    min_box_size: float,
    training: bool,
) -> list[Instances]:
    """Per image: the ``pre_nms_topk`` best proposals of each level, clipped, small ones removed,
    NMS within each level, then the ``post_nms_topk`` best over all levels.

    Args:
        proposals: per level, XYXY ``Tensor[N, Hi*Wi*A, 4]``.
        pred_objectness_logits: per level, ``Tensor[N, Hi*Wi*A]``.
        image_sizes: ``(h, w)`` per image.
        training: raise ``FloatingPointError`` on non-finite predictions instead of dropping them.

    Returns:
        per image, ``Instances`` with ``proposal_boxes`` and ``objectness_logits``, by decreasing score.
    """
    num_images = len(image_sizes)
    device = proposals[0].device
    batch_idx = torch.arange(num_images, device=device)
    topk_scores, topk_proposals, level_ids = [], [], []
    for level, (proposals_i, logits_i) in enumerate(zip(proposals, pred_objectness_logits, strict=True)):
        num_i = min(logits_i.shape[1], pre_nms_topk)
        scores_i, idx = logits_i.topk(num_i, dim=1)  # [N, num_i]
        topk_proposals.append(proposals_i[batch_idx[:, None], idx])  # [N, num_i, 4]
        topk_scores.append(scores_i)
        level_ids.append(torch.full((num_i,), level, dtype=torch.int64, device=device))
    all_scores = cat(topk_scores, dim=1)
    all_proposals = cat(topk_proposals, dim=1)
    all_levels = cat(level_ids, dim=0)

    results = []
    for n, image_size in enumerate(image_sizes):
        boxes, scores, levels = all_proposals[n], all_scores[n], all_levels
        valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores)
        if not valid.all():
            if training:
                raise FloatingPointError(
                    "predicted proposal boxes or scores contain Inf/NaN: training diverged"
                )
            boxes, scores, levels = boxes[valid], scores[valid], levels[valid]
        boxes = clip_boxes(boxes, image_size)
        keep = nonempty_boxes(boxes, min_box_size)
        if not keep.all():
            boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        keep = batched_nms(boxes, scores, levels, nms_thresh)[:post_nms_topk]  # by decreasing score
        result = Instances(tuple(image_size))
        result.proposal_boxes = Boxes(boxes[keep])
        result.objectness_logits = scores[keep]
        results.append(result)
    return results


def add_ground_truth_to_proposals(
    gt_boxes: Sequence[Boxes], proposals: Sequence[Instances]
) -> list[Instances]:
    """Append each image's ground-truth boxes to its proposals, with an objectness logit of ~23 (p ~ 1);
    the proposals keep the box type of the ground truth (``Boxes`` or ``RotatedBoxes``)."""
    if len(gt_boxes) != len(proposals):
        raise ValueError(f"got ground truth for {len(gt_boxes)} images and proposals for {len(proposals)}")
    results = []
    for gt, props in zip(gt_boxes, proposals, strict=True):
        logits = props.objectness_logits
        gt_props = Instances(props.image_size)
        gt_props.proposal_boxes = type(gt)(gt.tensor.to(logits.device))
        gt_props.objectness_logits = torch.full(
            (len(gt),), _GT_LOGIT, dtype=logits.dtype, device=logits.device
        )
        results.append(Instances.cat([props, gt_props]))
    return results
