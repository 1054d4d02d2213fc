"""ROI heads: proposal sampling (``ROIHeads``) and Mask R-CNN's box + mask heads (``StandardROIHeads``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dt_models.layers import nonzero_tuple
from dt_models.matcher import Matcher
from dt_models.poolers import ROIPooler
from dt_models.proposal_generator.proposal_utils import add_ground_truth_to_proposals
from dt_models.sampling import subsample_labels
from dt_structures import ImageList, Instances, pairwise_iou

__all__ = ["ROIHeads", "StandardROIHeads", "select_foreground_proposals"]


def select_foreground_proposals(
    proposals: Sequence[Instances], bg_label: int
) -> tuple[list[Instances], list[torch.Tensor]]:
    """Per image, the proposals whose ``gt_classes`` is neither ``-1`` nor ``bg_label``, and their mask."""
    selected, masks = [], []
    for props in proposals:
        fg = (props.gt_classes != -1) & (props.gt_classes != bg_label)
        selected.append(props[nonzero_tuple(fg)[0]])
        masks.append(fg)
    return selected, masks


class ROIHeads(nn.Module):
    """Base of ROI heads: matches proposals to ground truth and samples them for training.

    Args:
        num_classes: foreground classes; the background label is ``num_classes``.
        batch_size_per_image: proposals sampled per image for the losses.
        positive_fraction: at most this fraction of the sample is foreground.
        proposal_matcher: assigns proposals to ground truth (IoU 0.5 in the standard model).
        proposal_append_gt: add the ground-truth boxes to the proposals before sampling.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        batch_size_per_image: int,
        positive_fraction: float,
        proposal_matcher: Matcher,
        proposal_append_gt: bool = True,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.proposal_matcher = proposal_matcher
        self.proposal_append_gt = proposal_append_gt

    def _sample_proposals(
        self, matched_idxs: torch.Tensor, matched_labels: torch.Tensor, gt_classes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        has_gt = gt_classes.numel() > 0
        if has_gt:
            gt_classes = gt_classes[matched_idxs]
            gt_classes[matched_labels == 0] = self.num_classes
            gt_classes[matched_labels == -1] = -1
        else:
            gt_classes = torch.zeros_like(matched_idxs) + self.num_classes
        fg_idxs, bg_idxs = subsample_labels(
            gt_classes, self.batch_size_per_image, self.positive_fraction, self.num_classes
        )
        sampled = torch.cat([fg_idxs, bg_idxs], dim=0)
        return sampled, gt_classes[sampled]

    @torch.no_grad()
    def label_and_sample_proposals(
        self, proposals: list[Instances], targets: list[Instances]
    ) -> list[Instances]:
        """Sample proposals per image and attach ``gt_classes`` (background = ``num_classes``) and every
        ``gt_*`` field of the matched ground truth (only when the image has ground truth)."""
        if self.proposal_append_gt:
            proposals = add_ground_truth_to_proposals([t.gt_boxes for t in targets], proposals)
        sampled_proposals = []
        for props, target in zip(proposals, targets, strict=True):
            has_gt = len(target) > 0
            quality = pairwise_iou(target.gt_boxes, props.proposal_boxes)  # [G, R]
            matched_idxs, matched_labels = self.proposal_matcher(quality)
            sampled_idxs, gt_classes = self._sample_proposals(matched_idxs, matched_labels, target.gt_classes)
            props = props[sampled_idxs]
            props.gt_classes = gt_classes
            if has_gt:
                sampled_targets = matched_idxs[sampled_idxs]
                for name, value in target.get_fields().items():
                    if name.startswith("gt_") and not props.has(name):
                        props.set(name, value[sampled_targets])
            sampled_proposals.append(props)
        return sampled_proposals

    def forward(
        self,
        images: ImageList,
        features: dict[str, torch.Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        """Training: ``(sampled proposals, losses)``; inference: ``(detections per image, {})``."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward")


class StandardROIHeads(ROIHeads):
    """Box head (+ optional mask head), each with its own pooler over shared FPN features.

    Args:
        box_in_features: feature maps the box pooler reads, finest first.
        box_pooler, box_head, box_predictor: pooled features -> box features -> (scores, deltas).
        mask_in_features, mask_pooler, mask_head: the same for masks, all ``None`` for no masks.
        Other arguments as for :class:`ROIHeads`.
    """

    def __init__(
        self,
        *,
        box_in_features: Sequence[str],
        box_pooler: ROIPooler,
        box_head: nn.Module,
        box_predictor: nn.Module,
        mask_in_features: Sequence[str] | None = None,
        mask_pooler: ROIPooler | None = None,
        mask_head: nn.Module | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.in_features = self.box_in_features = list(box_in_features)
        self.box_pooler = box_pooler
        self.box_head = box_head
        self.box_predictor = box_predictor
        self.mask_on = mask_head is not None
        if self.mask_on and (mask_pooler is None or not mask_in_features):
            raise ValueError("a mask_head needs mask_in_features and a mask_pooler")
        if self.mask_on:
            self.mask_in_features = list(mask_in_features)
            self.mask_pooler = mask_pooler
            self.mask_head = mask_head

    def forward(
        self,
        images: ImageList,
        features: dict[str, torch.Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        if self.training:
            if targets is None:
                raise ValueError(f"{type(self).__name__} needs targets in training")
            proposals = self.label_and_sample_proposals(proposals, targets)
            losses = self._forward_box(features, proposals)
            losses.update(self._forward_mask(features, proposals))
            return proposals, losses
        instances = self._forward_box(features, proposals)
        return self.forward_with_given_boxes(features, instances), {}

    def forward_with_given_boxes(
        self, features: dict[str, torch.Tensor], instances: list[Instances]
    ) -> list[Instances]:
        """Run the non-box heads (masks) on detections that carry ``pred_boxes`` and ``pred_classes``."""
        if self.training:
            raise RuntimeError("forward_with_given_boxes is for inference; call eval() first")
        return self._forward_mask(features, instances)

    def _forward_box(self, features: dict[str, torch.Tensor], proposals: list[Instances]):
        feats = [features[f] for f in self.box_in_features]
        box_features = self.box_pooler(feats, [p.proposal_boxes for p in proposals])  # [R, C, 7, 7]
        box_features = self.box_head(box_features)  # [R, fc_dim]
        predictions = self.box_predictor(box_features)
        if self.training:
            return self.box_predictor.losses(predictions, proposals)
        instances, _ = self.box_predictor.inference(predictions, proposals)
        return instances

    def _forward_mask(self, features: dict[str, torch.Tensor], instances: list[Instances]):
        if not self.mask_on:
            return {} if self.training else instances
        if self.training:
            instances, _ = select_foreground_proposals(instances, self.num_classes)
            boxes = [i.proposal_boxes for i in instances]
        else:
            boxes = [i.pred_boxes for i in instances]
        mask_features = self.mask_pooler(
            [features[f] for f in self.mask_in_features], boxes
        )  # [R, C, 14, 14]
        return self.mask_head(mask_features, instances)
