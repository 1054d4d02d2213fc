"""Panoptic FPN (Kirillov et al. 2019): Mask R-CNN with a semantic segmentation head on the same FPN;
its config ``PanopticFPNConfig`` (registered as ``PanopticFPN``), ``build_panoptic_fpn`` and
``combine_semantic_and_instance_outputs``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import torch
from torch import nn

from dt_config import ConfigProblem
from dt_config import validators as check
from dt_models.backbone import Backbone
from dt_models.build import build_backbone
from dt_models.meta_arch.postprocessing import detector_postprocess
from dt_models.meta_arch.rcnn import GeneralizedRCNN, GeneralizedRCNNConfig
from dt_models.meta_arch.sem_seg_head import SemSegFPNHead, SemSegFPNHeadConfig, build_sem_seg_fpn_head
from dt_models.meta_arch.semantic_seg import gt_sem_seg, sem_seg_postprocess
from dt_models.registry import (
    META_ARCH_REGISTRY,
    PROPOSAL_GENERATOR_REGISTRY,
    ROI_HEADS_REGISTRY,
    ClassCount,
    ROIHeadsConfig,
)
from dt_models.roi_heads import MaskBranchConfig, StandardROIHeadsConfig
from dt_structures import Instances

__all__ = ["PanopticFPN", "PanopticFPNConfig", "build_panoptic_fpn", "combine_semantic_and_instance_outputs"]


def combine_semantic_and_instance_outputs(
    instance_results: Instances,
    semantic_results: torch.Tensor,
    overlap_threshold: float,
    stuff_area_thresh: int,
    instances_score_thresh: float,
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Panoptic segmentation from detections and a semantic label map, as panopticapi's heuristic.

    Instances are pasted in decreasing score order while their score is at least
    ``instances_score_thresh``; an instance is skipped if its mask is empty or more than
    ``overlap_threshold`` of it is already covered, otherwise it takes its still-free pixels.
    Then every semantic label except 0 (all "things" together) takes its still-free pixels, if at
    least ``stuff_area_thresh`` of them remain. Segment ids count from 1; 0 is unassigned.

    Args:
        instance_results: ``scores``, ``pred_classes`` and ``pred_masks`` ``Tensor[R, H, W]`` bool
            (the output of :func:`detector_postprocess`).
        semantic_results: ``Tensor[H, W]`` contiguous semantic label of each pixel.

    Returns:
        ``panoptic_seg`` ``Tensor[H, W]`` int32 segment ids, and ``segments_info``: per segment
        ``{"id", "isthing": True, "score", "category_id", "instance_id"}`` (an index into
        ``instance_results``) or ``{"id", "isthing": False, "category_id", "area"}``.
    """
    panoptic_seg = torch.zeros_like(semantic_results, dtype=torch.int32)
    segments_info: list[dict[str, Any]] = []
    segment_id = 0
    masks = instance_results.pred_masks.to(dtype=torch.bool, device=panoptic_seg.device)
    for inst_id in torch.argsort(-instance_results.scores):
        score = instance_results.scores[inst_id].item()
        if score < instances_score_thresh:
            break
        mask = masks[inst_id]  # [H, W]
        mask_area = mask.sum().item()
        if mask_area == 0:
            continue
        intersect_area = (mask & (panoptic_seg > 0)).sum().item()
        if intersect_area * 1.0 / mask_area > overlap_threshold:
            continue
        if intersect_area > 0:
            mask = mask & (panoptic_seg == 0)
        segment_id += 1
        panoptic_seg[mask] = segment_id
        segments_info.append({
            "id": segment_id, "isthing": True, "score": score,
            "category_id": instance_results.pred_classes[inst_id].item(), "instance_id": inst_id.item(),
        })  # fmt: skip
    for label in torch.unique(semantic_results).cpu().tolist():
        if label == 0:  # the class of all "things"
            continue
        mask = (semantic_results == label) & (panoptic_seg == 0)
        mask_area = mask.sum().item()
        if mask_area < stuff_area_thresh:
            continue
        segment_id += 1
        panoptic_seg[mask] = segment_id
        segments_info.append({"id": segment_id, "isthing": False, "category_id": label, "area": mask_area})
    return panoptic_seg, segments_info


class PanopticFPN(GeneralizedRCNN):
    """:class:`GeneralizedRCNN` (with a mask branch) plus a semantic segmentation head.

    Training inputs carry ``instances`` and ``sem_seg``; the losses are the head's
    ``loss_sem_seg``, the proposal losses, and the ROI heads' losses times ``instance_loss_weight``.
    Eval mode returns ``[{"sem_seg", "instances", "panoptic_seg": (ids, segments_info)}]`` at each
    input's ``height``/``width`` (:func:`combine_semantic_and_instance_outputs` on the semantic argmax).

    Args:
        sem_seg_head: ``(features, targets) -> (logits, losses)`` with an ``ignore_value``.
        combine_overlap_thresh, combine_stuff_area_thresh, combine_instances_score_thresh: of
            :func:`combine_semantic_and_instance_outputs`.
        instance_loss_weight: multiplies the ROI heads' losses.
        Other arguments as for :class:`GeneralizedRCNN`.
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        proposal_generator: nn.Module,
        roi_heads: nn.Module,
        sem_seg_head: SemSegFPNHead,
        combine_overlap_thresh: float = 0.5,
        combine_stuff_area_thresh: int = 4096,
        combine_instances_score_thresh: float = 0.5,
        instance_loss_weight: float = 1.0,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        input_format: str = "BGR",
    ) -> None:
        super().__init__(
            backbone=backbone, proposal_generator=proposal_generator, roi_heads=roi_heads,
            pixel_mean=pixel_mean, pixel_std=pixel_std, input_format=input_format,
        )  # fmt: skip
        self.sem_seg_head = sem_seg_head
        self.combine_overlap_thresh = combine_overlap_thresh
        self.combine_stuff_area_thresh = combine_stuff_area_thresh
        self.combine_instances_score_thresh = combine_instances_score_thresh
        self.instance_loss_weight = instance_loss_weight

    def forward(self, batched_inputs: Sequence[dict[str, Any]]):
        if not self.training:
            return self.inference(batched_inputs)
        images = self.preprocess_image(batched_inputs)
        features = self.extract_features(images)
        _, losses = self.sem_seg_head(
            features, gt_sem_seg(self, batched_inputs, self.sem_seg_head.ignore_value)
        )
        gt_instances = self.gt_instances(batched_inputs)
        proposals, proposal_losses = self.proposal_generator(images, features, gt_instances)
        _, detector_losses = self.roi_heads(images, features, proposals, gt_instances)
        losses.update(proposal_losses)
        losses.update({k: v * self.instance_loss_weight for k, v in detector_losses.items()})
        return losses

    def inference(  # type: ignore[override]
        self, batched_inputs: Sequence[dict[str, Any]], do_postprocess: bool = True
    ) -> list[dict[str, Any]] | tuple[list[Instances], torch.Tensor]:
        """Outputs per image (see the class); with ``do_postprocess=False`` the raw detections and
        semantic logits ``Tensor[N, C, H', W']`` at the padded network input size."""
        if self.training:
            raise RuntimeError("inference needs eval mode; call model.eval() first")
        images = self.preprocess_image(batched_inputs)
        features = self.extract_features(images)
        sem_seg_results, _ = self.sem_seg_head(features, None)
        proposals, _ = self.proposal_generator(images, features, None)
        detector_results, _ = self.roi_heads(images, features, proposals, None)
        if not do_postprocess:
            return detector_results, sem_seg_results
        outputs = []
        for sem_seg, detections, x, size in zip(
            sem_seg_results, detector_results, batched_inputs, images.image_sizes, strict=True
        ):
            height, width = x.get("height", size[0]), x.get("width", size[1])
            sem_seg_r = sem_seg_postprocess(sem_seg, size, height, width)
            instances_r = detector_postprocess(detections, height, width)
            panoptic = combine_semantic_and_instance_outputs(
                instances_r, sem_seg_r.argmax(dim=0), self.combine_overlap_thresh,
                self.combine_stuff_area_thresh, self.combine_instances_score_thresh,
            )  # fmt: skip
            outputs.append({"sem_seg": sem_seg_r, "instances": instances_r, "panoptic_seg": panoptic})
        return outputs


def _mask_rcnn_heads() -> StandardROIHeadsConfig:
    return StandardROIHeadsConfig(branches={"mask": MaskBranchConfig()})


@attrs.define(frozen=True, kw_only=True)
class PanopticFPNConfig(GeneralizedRCNNConfig):
    """Panoptic FPN: Mask R-CNN R50-FPN + ``SemSegFPNHead``; defaults are detectron2's
    Base-Panoptic-FPN.yaml (``combine_*``: ``MODEL.PANOPTIC_FPN.COMBINE.*``)."""

    name: ClassVar[str] = "PanopticFPN"
    roi_heads: ROIHeadsConfig = attrs.field(
        factory=_mask_rcnn_heads, validator=check.instance_of(ROIHeadsConfig)
    )
    sem_seg_head: SemSegFPNHeadConfig = attrs.field(
        factory=SemSegFPNHeadConfig, validator=check.instance_of(SemSegFPNHeadConfig)
    )
    combine_overlap_thresh: float = attrs.field(default=0.5, validator=check.between(0.0, 1.0))
    combine_stuff_area_thresh: int = attrs.field(default=4096, validator=check.at_least(0))
    combine_instances_score_thresh: float = attrs.field(default=0.5, validator=check.between(0.0, 1.0))
    instance_loss_weight: float = attrs.field(default=1.0, validator=check.at_least(0.0))

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.check_input_features(self.sem_seg_head, "sem_seg_head")
        if "gt_masks" not in self.roi_heads.gt_fields():
            raise ConfigProblem(
                "PanopticFPN needs a mask branch (e.g. mask: {name: MaskBranch})", key="roi_heads"
            )

    def class_counts(self) -> tuple[ClassCount, ...]:
        return (*super().class_counts(), self.sem_seg_head.class_count("sem_seg_head"))


@META_ARCH_REGISTRY.register(PanopticFPNConfig)
def build_panoptic_fpn(config: PanopticFPNConfig) -> PanopticFPN:
    """Mask R-CNN + ``SemSegFPNHead``."""
    backbone = build_backbone(config.backbone, config.input_shape())
    shapes = backbone.output_shape()
    return PanopticFPN(
        backbone=backbone,
        proposal_generator=PROPOSAL_GENERATOR_REGISTRY.build(config.proposal_generator, input_shape=shapes),
        roi_heads=ROI_HEADS_REGISTRY.build(config.roi_heads, input_shape=shapes),
        sem_seg_head=build_sem_seg_fpn_head(config.sem_seg_head, shapes),
        combine_overlap_thresh=config.combine_overlap_thresh,
        combine_stuff_area_thresh=config.combine_stuff_area_thresh,
        combine_instances_score_thresh=config.combine_instances_score_thresh,
        instance_loss_weight=config.instance_loss_weight,
        **config.input_kwargs(),
    )
