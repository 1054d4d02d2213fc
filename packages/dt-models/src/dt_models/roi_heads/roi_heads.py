"""ROI heads: proposal sampling (``ROIHeads``) and ``StandardROIHeads`` (the box branch plus named extra
branches: Faster / Mask R-CNN and beyond), with its config ``StandardROIHeadsConfig``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import attrs
import torch
from torch import nn

from dt_config import validators as check
from dt_models.layers import ShapeSpec, nonzero_tuple, shared_channels
from dt_models.matcher import Matcher, check_matcher_fields
from dt_models.poolers import PoolerConfig, ROIPooler, build_pooler
from dt_models.proposal_generator.proposal_utils import add_ground_truth_to_proposals
from dt_models.registry import (
    ROI_BOX_HEAD_REGISTRY,
    ROI_BOX_PREDICTOR_REGISTRY,
    ROI_BRANCH_REGISTRY,
    ROI_HEADS_REGISTRY,
    BoxHeadConfig,
    BoxPredictorConfig,
    ROIHeadsConfig,
)
from dt_models.roi_heads.box_head import FastRCNNConvFCHeadConfig
from dt_models.roi_heads.branch import ROIBranch, ROIBranches, check_branches
from dt_models.roi_heads.fast_rcnn import FastRCNNOutputLayersConfig
from dt_models.sampling import subsample_labels
from dt_structures import ImageList, Instances, pairwise_iou

__all__ = [
    "ROIHeads",
    "StandardROIHeads",
    "SampledROIHeadsConfig",
    "StandardROIHeadsConfig",
    "branches_input_features",
    "box_branch_kwargs",
    "build_box_predictor",
    "build_branches",
    "build_standard_roi_heads",
    "roi_heads_sampling_kwargs",
    "select_foreground_proposals",
]


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

    ``match_quality(gt_boxes, proposal_boxes) -> Tensor[G, R]`` scores proposals against ground truth
    for the matcher: IoU here, rotated IoU in ``RROIHeads``.
    """

    match_quality = staticmethod(pairwise_iou)

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
            quality = self.match_quality(target.gt_boxes, props.proposal_boxes)  # [G, R]
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
    """The box branch (pooler, head, predictor) and named extra branches (``mask``, ...).

    Proposals are matched and sampled once (:class:`ROIHeads`); in training every branch then gets the
    sampled foreground proposals, at inference the detections of the box branch (see
    :class:`ROIBranch`). Branches run in order; their losses and fields add to the box branch's.

    Args:
        box_in_features: feature maps the box pooler reads, finest first.
        box_pooler, box_head, box_predictor: pooled features -> box features -> (scores, deltas).
        branches: extra branches by name (none: Faster R-CNN; ``{"mask": MaskBranch(...)}``: Mask R-CNN).
        Other arguments as for :class:`ROIHeads`.
    """

    def __init__(
        self,
        *,
        box_in_features: Sequence[str],
        box_pooler: ROIPooler,
        box_head: nn.Module,
        box_predictor: nn.Module,
        branches: Mapping[str, ROIBranch] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.in_features = self.box_in_features = list(box_in_features)
        self.box_pooler = box_pooler
        self.box_head = box_head
        self.box_predictor = box_predictor
        branches = dict(branches or {})
        wrong = {name: type(b).__name__ for name, b in branches.items() if not isinstance(b, ROIBranch)}
        if wrong:
            raise TypeError(f"branches must be ROIBranch modules, got {wrong}")
        self.branches = nn.ModuleDict(branches)

    def forward(
        self,
        images: ImageList,
        features: dict[str, torch.Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        if not self.training:
            instances = self._forward_box(features, proposals)
            return self.forward_with_given_boxes(features, instances), {}
        if targets is None:
            raise ValueError(f"{type(self).__name__} needs targets in training")
        proposals = self.label_and_sample_proposals(proposals, targets)
        losses = self._forward_box(features, proposals, targets)
        foreground, _ = select_foreground_proposals(proposals, self.num_classes)
        for name, branch in self.branches.items():
            selected = branch.select_training_instances(foreground)
            branch_losses = branch(branch.pool(features, [p.proposal_boxes for p in selected]), selected)
            clashes = sorted(set(branch_losses) & set(losses))
            if clashes:
                raise ValueError(
                    f"branch {name!r} returns losses {clashes}, which the ROI heads already have"
                )
            losses.update(branch_losses)
        return proposals, losses

    def forward_with_given_boxes(
        self, features: dict[str, torch.Tensor], instances: list[Instances]
    ) -> list[Instances]:
        """Run the extra branches on detections that carry ``pred_boxes`` and ``pred_classes``."""
        if self.training:
            raise RuntimeError("forward_with_given_boxes is for inference; call eval() first")
        for branch in self.branches.values():
            instances = branch(branch.pool(features, [i.pred_boxes for i in instances]), instances)
        return instances

    def _forward_box(
        self,
        features: dict[str, torch.Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ):
        """Training: the box losses of the sampled ``proposals`` (``targets``: their images' ground
        truth, which cascades re-match); inference: the detections per image."""
        feats = [features[f] for f in self.box_in_features]
        box_features = self.box_pooler(feats, [p.proposal_boxes for p in proposals])  # [R, C, 7, 7]
        box_features = self.box_head(box_features)  # [R, fc_dim]
        predictions = self.box_predictor(box_features)
        if self.training:
            return self.box_predictor.losses(predictions, proposals)
        instances, _ = self.box_predictor.inference(predictions, proposals)
        return instances


@attrs.define(frozen=True, kw_only=True)
class SampledROIHeadsConfig(ROIHeadsConfig):
    """Fields of every ROI heads that match and sample proposals (:class:`ROIHeads`), pool boxes and
    predict them: the base of ``StandardROIHeadsConfig``, ``Res5ROIHeadsConfig``, ...

    ``iou_thresholds``/``iou_labels`` configure the proposal ``Matcher``; ``score_thresh_test``,
    ``nms_thresh_test`` and ``detections_per_image`` the box predictor's inference.
    """

    num_classes: int = attrs.field(default=80, validator=check.at_least(1))
    in_features: tuple[str, ...] = attrs.field(default=("p2", "p3", "p4", "p5"), validator=check.non_empty)
    iou_thresholds: tuple[float, ...] = (0.5,)
    iou_labels: tuple[int, ...] = (0, 1)
    batch_size_per_image: int = attrs.field(default=512, validator=check.at_least(1))
    positive_fraction: float = attrs.field(default=0.25, validator=check.between(0.0, 1.0))
    proposal_append_gt: bool = True
    score_thresh_test: float = attrs.field(default=0.05, validator=check.between(0.0, 1.0))
    nms_thresh_test: float = attrs.field(default=0.5, validator=check.between(0.0, 1.0))
    detections_per_image: int = 100
    box_pooler: PoolerConfig = attrs.field(factory=PoolerConfig, validator=check.instance_of(PoolerConfig))

    def __attrs_post_init__(self) -> None:
        check_matcher_fields(self.iou_thresholds, self.iou_labels)


def roi_heads_sampling_kwargs(config: SampledROIHeadsConfig) -> dict:
    """The :class:`ROIHeads` keyword arguments of ``config`` (classes, sampling, proposal matcher)."""
    return dict(
        num_classes=config.num_classes, batch_size_per_image=config.batch_size_per_image,
        positive_fraction=config.positive_fraction,
        proposal_matcher=Matcher(config.iou_thresholds, config.iou_labels, allow_low_quality_matches=False),
        proposal_append_gt=config.proposal_append_gt,
    )  # fmt: skip


def build_box_predictor(
    predictor: BoxPredictorConfig, config: SampledROIHeadsConfig, input_shape: ShapeSpec, num_classes: int
) -> nn.Module:
    """The box predictor ``predictor`` on box features of ``input_shape``, with ``config``'s inference
    settings."""
    return ROI_BOX_PREDICTOR_REGISTRY.build(
        predictor, input_shape=input_shape, num_classes=num_classes,
        test_score_thresh=config.score_thresh_test, test_nms_thresh=config.nms_thresh_test,
        test_topk_per_image=config.detections_per_image,
    )  # fmt: skip


@attrs.define(frozen=True, kw_only=True)
class StandardROIHeadsConfig(SampledROIHeadsConfig):
    """Proposal matching and sampling, the box branch, and named extra ``branches``.

    ``branches`` maps a name (an identifier) to a registered branch config, e.g.
    ``{"mask": MaskBranchConfig()}`` for Mask R-CNN; ``{}`` (the default) is Faster R-CNN.
    """

    name: ClassVar[str] = "StandardROIHeads"
    box_head: BoxHeadConfig = attrs.field(
        factory=FastRCNNConvFCHeadConfig, validator=check.instance_of(BoxHeadConfig)
    )
    box_predictor: BoxPredictorConfig = attrs.field(
        factory=FastRCNNOutputLayersConfig, validator=check.instance_of(BoxPredictorConfig)
    )
    branches: ROIBranches = attrs.field(factory=dict, validator=check_branches)

    def input_features(self) -> dict[str, tuple[str, ...]]:
        return {"in_features": self.in_features, **branches_input_features(self.branches)}

    def gt_fields(self) -> frozenset[str]:
        return super().gt_fields().union(*(branch.gt_fields() for branch in self.branches.values()))


def branches_input_features(branches: ROIBranches) -> dict[str, tuple[str, ...]]:
    """The feature maps of the ``branches`` that set their own, by config key
    (``branches.<name>.in_features``)."""
    return {
        f"branches.{name}.in_features": branch.in_features
        for name, branch in branches.items()
        if branch.in_features is not None
    }


def build_branches(
    branches: ROIBranches, config: SampledROIHeadsConfig, input_shape: dict[str, ShapeSpec]
) -> dict[str, ROIBranch]:
    """Every branch of ``branches``, reading the ROI heads' ``in_features`` unless it sets its own."""
    return {
        name: ROI_BRANCH_REGISTRY.build(
            branch,
            input_shape=input_shape,
            num_classes=config.num_classes,
            in_features=config.in_features if branch.in_features is None else branch.in_features,
        )  # fmt: skip
        for name, branch in branches.items()
    }


@ROI_HEADS_REGISTRY.register(StandardROIHeadsConfig)
def build_standard_roi_heads(
    config: StandardROIHeadsConfig, input_shape: dict[str, ShapeSpec]
) -> StandardROIHeads:
    """Box pooler, head and predictor, and every configured branch."""
    return StandardROIHeads(
        **box_branch_kwargs(config, input_shape),
        branches=build_branches(config.branches, config, input_shape),
        **roi_heads_sampling_kwargs(config),
    )


def box_branch_kwargs(config: StandardROIHeadsConfig, input_shape: dict[str, ShapeSpec]) -> dict:
    """The box branch keyword arguments of :class:`StandardROIHeads` (``box_in_features``,
    ``box_pooler``, ``box_head``, ``box_predictor``) built from ``config``."""
    side = config.box_pooler.resolution
    channels = shared_channels(input_shape, config.in_features, config.name)
    box_head = ROI_BOX_HEAD_REGISTRY.build(
        config.box_head, input_shape=ShapeSpec(channels=channels, height=side, width=side)
    )
    return dict(
        box_in_features=config.in_features,
        box_pooler=build_pooler(config.box_pooler, config.in_features, input_shape),
        box_head=box_head,
        box_predictor=build_box_predictor(
            config.box_predictor, config, box_head.output_shape, config.num_classes
        ),
    )
