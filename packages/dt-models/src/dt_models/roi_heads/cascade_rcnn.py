"""``CascadeROIHeads`` (Cai & Vasconcelos 2018): box stages that each refine the previous stage's boxes,
matched to the ground truth at increasing IoU thresholds; its config ``CascadeROIHeadsConfig``
(registered as ``CascadeROIHeads``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs
import torch
from torch import nn

from dt_config import ConfigProblem
from dt_config import validators as check
from dt_models.layers import ShapeSpec, scale_gradient, shared_channels
from dt_models.matcher import Matcher
from dt_models.poolers import build_pooler
from dt_models.registry import ROI_BOX_HEAD_REGISTRY, ROI_HEADS_REGISTRY, BoxHeadConfig, BoxPredictorConfig
from dt_models.roi_heads.box_head import FastRCNNConvFCHeadConfig
from dt_models.roi_heads.branch import ROIBranches, check_branches
from dt_models.roi_heads.fast_rcnn import FastRCNNOutputLayersConfig, fast_rcnn_inference
from dt_models.roi_heads.roi_heads import (
    SampledROIHeadsConfig,
    StandardROIHeads,
    branches_input_features,
    build_box_predictor,
    build_branches,
    roi_heads_sampling_kwargs,
)
from dt_structures import Boxes, Instances, pairwise_iou

__all__ = ["CascadeROIHeads", "CascadeROIHeadsConfig", "build_cascade_roi_heads"]


class CascadeROIHeads(StandardROIHeads):
    """Box stages ``k = 0 .. S-1``, each a box head and a class-agnostic box predictor on one shared
    pooler; stage ``k > 0`` runs on the (detached, clipped) boxes stage ``k - 1`` predicted.

    Training: stage 0 trains on the sampled proposals; stage ``k > 0`` on all boxes of stage ``k - 1``
    (empty ones dropped), matched to the ground truth by ``stage_matchers[k]``. Every stage's
    gradient into the pooled features is scaled by ``1 / S``; losses are named ``loss_cls_stage{k}``,
    ``loss_box_reg_stage{k}``. Inference: class scores are averaged over the stages, boxes are the
    last stage's. Branches (masks, ...) train on the sampled proposals of stage 0 and run on the
    final detections.

    Args:
        box_heads, box_predictors: one per stage, like ``StandardROIHeads``' ``box_head`` and
            ``box_predictor``; each predictor must regress one class-agnostic box per proposal.
        stage_matchers: one per stage; the first also samples the proposals (``proposal_matcher``).
        Other arguments as for :class:`StandardROIHeads` (except ``box_head``, ``box_predictor`` and
        ``proposal_matcher``).
    """

    def __init__(
        self,
        *,
        box_heads: Sequence[nn.Module],
        box_predictors: Sequence[nn.Module],
        stage_matchers: Sequence[Matcher],
        **kwargs,
    ) -> None:
        if not len(box_heads) == len(box_predictors) == len(stage_matchers) >= 1:
            raise ValueError(
                f"one box head, predictor and matcher per stage, got {len(box_heads)}, "
                f"{len(box_predictors)} and {len(stage_matchers)}"
            )
        if "proposal_matcher" in kwargs:
            raise TypeError("CascadeROIHeads takes stage_matchers (one per stage), not proposal_matcher")
        super().__init__(
            box_head=nn.ModuleList(box_heads), box_predictor=nn.ModuleList(box_predictors),
            proposal_matcher=stage_matchers[0], **kwargs,
        )  # fmt: skip
        self.num_cascade_stages = len(box_heads)
        self.stage_matchers = list(stage_matchers)

    def _forward_box(
        self,
        features: dict[str, torch.Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ):
        feats = [features[f] for f in self.box_in_features]
        image_sizes = [p.image_size for p in proposals]
        stage_outputs = []  # (predictor, predictions, proposals) per stage
        prev_boxes: list[torch.Tensor] = []
        for k in range(self.num_cascade_stages):
            if k > 0:
                proposals = self._proposals_from_boxes(prev_boxes, image_sizes)
                if self.training:
                    proposals = self._match_and_label_boxes(proposals, k, targets)
            predictions = self._run_stage(feats, proposals, k)
            predictor = self.box_predictor[k]
            prev_boxes = predictor.predict_boxes(predictions, proposals)  # per image, [Ri, 4]
            stage_outputs.append((predictor, predictions, proposals))
        if self.training:
            losses = {}
            for k, (predictor, predictions, stage_proposals) in enumerate(stage_outputs):
                stage_losses = predictor.losses(predictions, stage_proposals)
                losses.update({f"{name}_stage{k}": value for name, value in stage_losses.items()})
            return losses
        probs_per_stage = [predictor.predict_probs(pred, props) for predictor, pred, props in stage_outputs]
        scores = [
            sum(per_image) / self.num_cascade_stages for per_image in zip(*probs_per_stage, strict=True)
        ]
        last = self.box_predictor[-1]
        instances, _ = fast_rcnn_inference(
            prev_boxes, scores, image_sizes, last.test_score_thresh, last.test_nms_thresh,
            last.test_topk_per_image,
        )  # fmt: skip
        return instances

    def _run_stage(self, feats: list[torch.Tensor], proposals: list[Instances], stage: int):
        box_features = self.box_pooler(feats, [p.proposal_boxes for p in proposals])  # [R, C, S, S]
        if self.training:
            box_features = scale_gradient(box_features, 1.0 / self.num_cascade_stages)
        return self.box_predictor[stage](self.box_head[stage](box_features))

    def _proposals_from_boxes(
        self, boxes: list[torch.Tensor], image_sizes: list[tuple[int, int]]
    ) -> list[Instances]:
        """Per image, proposals at the detached ``boxes`` ``Tensor[Ri, 4]`` clipped to the image
        (empty ones dropped in training)."""
        proposals = []
        for boxes_per_image, image_size in zip(boxes, image_sizes, strict=True):
            if boxes_per_image.dim() != 2 or boxes_per_image.shape[1] != 4:
                raise ValueError(
                    "cascade stages need class-agnostic box regression (one box per proposal), got "
                    f"boxes of shape {tuple(boxes_per_image.shape)}"
                )
            stage_boxes = Boxes(boxes_per_image.detach())
            stage_boxes.clip(image_size)
            if self.training:
                stage_boxes = stage_boxes[stage_boxes.nonempty()]
            props = Instances(image_size)
            props.proposal_boxes = stage_boxes
            proposals.append(props)
        return proposals

    @torch.no_grad()
    def _match_and_label_boxes(
        self, proposals: list[Instances], stage: int, targets: list[Instances] | None
    ) -> list[Instances]:
        """Set ``gt_classes`` (background: ``num_classes``) and ``gt_boxes`` of each stage proposal from
        its match by ``stage_matchers[stage]``."""
        if targets is None:
            raise ValueError(f"{type(self).__name__} needs targets in training")
        for props, target in zip(proposals, targets, strict=True):
            quality = pairwise_iou(target.gt_boxes, props.proposal_boxes)  # [G, R]
            matched_idxs, labels = self.stage_matchers[stage](quality)
            if len(target) > 0:
                gt_classes = target.gt_classes[matched_idxs]
                gt_classes[labels == 0] = self.num_classes
                gt_boxes = target.gt_boxes[matched_idxs]
            else:
                gt_classes = torch.zeros_like(matched_idxs) + self.num_classes
                gt_boxes = Boxes(target.gt_boxes.tensor.new_zeros((len(props), 4)))
            props.gt_classes = gt_classes
            props.gt_boxes = gt_boxes
        return proposals


def _cascade_predictors() -> tuple[BoxPredictorConfig, ...]:
    return tuple(
        FastRCNNOutputLayersConfig(bbox_reg_weights=weights, cls_agnostic_bbox_reg=True)
        for weights in ((10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 15.0))
    )


@attrs.define(frozen=True, kw_only=True)
class CascadeROIHeadsConfig(SampledROIHeadsConfig):
    """Cascade R-CNN's ROI heads: one ``box_head`` (built once per stage) and one box predictor per
    stage (``box_predictors``, class-agnostic, each with its own box coding weights), matched at
    ``stage_iou_thresholds``; extra ``branches`` as in ``StandardROIHeadsConfig``.

    The first stage samples proposals at ``iou_thresholds``, which must be ``[stage_iou_thresholds[0]]``.
    """

    name: ClassVar[str] = "CascadeROIHeads"
    stage_iou_thresholds: tuple[float, ...] = attrs.field(default=(0.5, 0.6, 0.7), validator=check.non_empty)
    box_head: BoxHeadConfig = attrs.field(
        factory=FastRCNNConvFCHeadConfig, validator=check.instance_of(BoxHeadConfig)
    )
    box_predictors: tuple[BoxPredictorConfig, ...] = attrs.field(factory=_cascade_predictors)
    branches: ROIBranches = attrs.field(factory=dict, validator=check_branches)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if len(self.box_predictors) != len(self.stage_iou_thresholds):
            raise ConfigProblem(
                f"needs one predictor per stage ({len(self.stage_iou_thresholds)} stage_iou_thresholds), "
                f"got {len(self.box_predictors)}",
                key="box_predictors",
            )
        for k, predictor in enumerate(self.box_predictors):
            if not isinstance(predictor, BoxPredictorConfig):
                raise ConfigProblem(
                    f"expected a BoxPredictorConfig, got {type(predictor).__name__}",
                    key=f"box_predictors.{k}",
                )
            if getattr(predictor, "cls_agnostic_bbox_reg", True) is not True:
                raise ConfigProblem(
                    "cascade stages regress class-agnostic boxes: must be true",
                    key=f"box_predictors.{k}.cls_agnostic_bbox_reg",
                )
        if tuple(self.iou_thresholds) != (self.stage_iou_thresholds[0],) or tuple(self.iou_labels) != (0, 1):
            raise ConfigProblem(
                "the first stage samples at iou_thresholds, so they must be "
                f"[{self.stage_iou_thresholds[0]}] with iou_labels [0, 1], "
                f"got {list(self.iou_thresholds)} and {list(self.iou_labels)}",
                key="iou_thresholds",
            )

    def input_features(self) -> dict[str, tuple[str, ...]]:
        return {"in_features": self.in_features, **branches_input_features(self.branches)}

    def gt_fields(self) -> frozenset[str]:
        return super().gt_fields().union(*(branch.gt_fields() for branch in self.branches.values()))


@ROI_HEADS_REGISTRY.register(CascadeROIHeadsConfig)
def build_cascade_roi_heads(
    config: CascadeROIHeadsConfig, input_shape: dict[str, ShapeSpec]
) -> CascadeROIHeads:
    """The shared box pooler, a box head, predictor and matcher per stage, and every branch."""
    side = config.box_pooler.resolution
    pooled_shape = ShapeSpec(
        channels=shared_channels(input_shape, config.in_features, "CascadeROIHeads"), height=side, width=side
    )
    box_heads, box_predictors = [], []
    for predictor in config.box_predictors:
        head = ROI_BOX_HEAD_REGISTRY.build(config.box_head, input_shape=pooled_shape)
        box_heads.append(head)
        box_predictors.append(build_box_predictor(predictor, config, head.output_shape, config.num_classes))
    branches = build_branches(config.branches, config, input_shape)
    sampling = roi_heads_sampling_kwargs(config)
    sampling.pop("proposal_matcher")
    return CascadeROIHeads(
        box_in_features=config.in_features,
        box_pooler=build_pooler(config.box_pooler, config.in_features, input_shape),
        box_heads=box_heads,
        box_predictors=box_predictors,
        stage_matchers=[
            Matcher([iou], [0, 1], allow_low_quality_matches=False) for iou in config.stage_iou_thresholds
        ],
        branches=branches,
        **sampling,
    )
