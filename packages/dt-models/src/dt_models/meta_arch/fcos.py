"""FCOS (Tian et al. 2019): an anchor-free dense detector over points, with centerness; its config
``FCOSConfig`` (registered as ``FCOS``), ``build_fcos`` and ``centerness_targets``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import torch
from torch.nn import functional as F

from dt_config import validators as check
from dt_models.anchor_generator import DefaultAnchorGenerator
from dt_models.backbone import Backbone
from dt_models.box_regression import BOX_REG_LOSS_TYPES, dense_box_regression_loss
from dt_models.build import build_backbone
from dt_models.layers import cat, shared_channels
from dt_models.layers.focal_loss import sigmoid_focal_loss
from dt_models.meta_arch.dense_detector import DenseDetector, DenseDetectorConfig, retinanet_backbone_config
from dt_models.meta_arch.fcos_head import FCOSHead
from dt_models.meta_arch.linear_box_coder import Box2BoxTransformLinear
from dt_models.meta_arch.retinanet_head import RetinaNetHeadConfig
from dt_models.registry import META_ARCH_REGISTRY, BackboneConfig
from dt_structures import Boxes, ImageList, Instances, pairwise_point_box_distance

__all__ = ["FCOS", "FCOSConfig", "build_fcos", "centerness_targets"]


def centerness_targets(distances: torch.Tensor) -> torch.Tensor:
    """FCOS centerness ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))`` of point-to-edge
    distances ``Tensor[..., 4]`` ``(l, t, r, b)``: 1 at a box's center, towards 0 at its edges."""
    left_right = distances[..., [0, 2]]
    top_bottom = distances[..., [1, 3]]
    ratio_x = left_right.min(dim=-1).values / left_right.max(dim=-1).values
    ratio_y = top_bottom.min(dim=-1).values / top_bottom.max(dim=-1).values
    return torch.sqrt(ratio_x * ratio_y)


class FCOS(DenseDetector):
    """One point per location of each level (the center of its cell), each labelled with the smallest
    ground-truth box that (1) contains it, (2) has its center within ``center_sampling_radius``
    strides of it, and (3) is in the level's size range (the largest point-to-edge distance in
    ``(4, 8]`` strides; unbounded below on the finest level and above on the coarsest).

    Losses: sigmoid focal loss on every point, a box loss (GIoU by default) and a centerness binary
    cross-entropy on the foreground ones, all divided by an EMA of the foreground count (initially
    300). At inference a point's score is ``sqrt(sigmoid(cls) * sigmoid(centerness))``.

    Args:
        backbone, head, head_in_features: as for :class:`DenseDetector`; ``head`` is an
            :class:`FCOSHead`.
        num_classes: K foreground classes.
        center_sampling_radius: in strides.
        focal_loss_alpha, focal_loss_gamma: of :func:`sigmoid_focal_loss`.
        box_reg_loss_type: ``"giou"`` (detectron2), ``"diou"``, ``"ciou"`` or ``"smooth_l1"``.
        Other arguments as for :class:`DenseDetector`.
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        head: FCOSHead,
        head_in_features: Sequence[str],
        num_classes: int,
        center_sampling_radius: float = 1.5,
        focal_loss_alpha: float = 0.25,
        focal_loss_gamma: float = 2.0,
        box_reg_loss_type: str = "giou",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            backbone=backbone, head=head, head_in_features=head_in_features,
            box2box_transform=Box2BoxTransformLinear(normalize_by_size=True), **kwargs,
        )  # fmt: skip
        if box_reg_loss_type not in BOX_REG_LOSS_TYPES:
            raise ValueError(
                f"box_reg_loss_type must be one of {BOX_REG_LOSS_TYPES}, got {box_reg_loss_type}"
            )
        strides = [backbone.output_shape()[f].stride for f in self.head_in_features]
        self.anchor_generator = DefaultAnchorGenerator(
            sizes=[[s] for s in strides], aspect_ratios=[[1.0]], strides=strides, offset=0.5
        )
        self.num_classes = num_classes
        self.center_sampling_radius = float(center_sampling_radius)
        self.focal_loss_alpha = focal_loss_alpha
        self.focal_loss_gamma = focal_loss_gamma
        self.box_reg_loss_type = box_reg_loss_type

    def forward_training(
        self,
        images: ImageList,
        features: list[torch.Tensor],
        predictions: tuple[list[torch.Tensor], ...],
        gt_instances: list[Instances],
    ) -> dict[str, torch.Tensor]:
        """``loss_fcos_cls``, ``loss_fcos_loc`` and ``loss_fcos_ctr``."""
        logits, deltas, ctrness = self.transpose_dense_predictions(predictions, [self.num_classes, 4, 1])
        anchors = self.anchor_generator(features)
        gt_labels, gt_boxes = self.label_anchors(anchors, gt_instances)
        return self.losses(anchors, logits, gt_labels, deltas, gt_boxes, ctrness)

    @torch.no_grad()
    def match_quality(self, gt_boxes: Boxes, anchors: list[Boxes]) -> torch.Tensor:
        """``Tensor[M, R]``: ``1e8 - area`` of each of M boxes for the R points it may be assigned to
        (the three rules of the class docstring), 0 elsewhere; the maximum picks the smallest box."""
        points_per_level = [len(a) for a in anchors]
        cells = Boxes.cat(anchors)
        centers = cells.get_centers()  # [R, 2]
        sizes = cells.tensor[:, 2] - cells.tensor[:, 0]  # [R]: the level's stride
        lower_bound = sizes * 4
        lower_bound[: points_per_level[0]] = 0
        upper_bound = sizes * 8
        upper_bound[-points_per_level[-1] :] = float("inf")
        center_dists = (centers[None, :, :] - gt_boxes.get_centers()[:, None, :]).abs()  # [M, R, 2]
        quality = center_dists.max(dim=2).values < self.center_sampling_radius * sizes[None, :]
        distances = pairwise_point_box_distance(centers, gt_boxes).permute(1, 0, 2)  # [M, R, 4]
        quality &= distances.min(dim=2).values > 0
        largest = distances.max(dim=2).values  # [M, R]
        quality &= (largest > lower_bound[None, :]) & (largest < upper_bound[None, :])
        return quality.to(torch.float32) * (1e8 - gt_boxes.area()[:, None])

    @torch.no_grad()
    def label_anchors(
        self, anchors: list[Boxes], gt_instances: list[Instances]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per image: the class of every point ``Tensor[R]`` (K: background; none is ignored) and its
        matched box ``Tensor[R, 4]``."""
        gt_labels, matched_gt_boxes = [], []
        for instances in gt_instances:
            if len(instances) == 0:
                matched = torch.zeros_like(Boxes.cat(anchors).tensor)
                labels = torch.full(
                    (len(matched),), self.num_classes, dtype=torch.long, device=matched.device
                )
            else:
                quality, matched_idxs = self.match_quality(instances.gt_boxes, anchors).max(dim=0)
                matched_idxs[quality < 1e-5] = -1
                matched = instances.gt_boxes.tensor[matched_idxs.clip(min=0)]
                labels = instances.gt_classes[matched_idxs.clip(min=0)]
                labels[matched_idxs < 0] = self.num_classes
            gt_labels.append(labels)
            matched_gt_boxes.append(matched)
        return gt_labels, matched_gt_boxes

    def losses(
        self,
        anchors: list[Boxes],
        pred_logits: list[torch.Tensor],
        gt_labels: list[torch.Tensor],
        pred_deltas: list[torch.Tensor],
        gt_boxes: list[torch.Tensor],
        pred_centerness: list[torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """As :meth:`RetinaNet.losses` on every point, plus the centerness loss on the foreground."""
        labels = torch.stack(gt_labels)  # [N, R]
        pos_mask = (labels >= 0) & (labels != self.num_classes)
        normalizer = self.ema_update("loss_normalizer", max(pos_mask.sum().item(), 1), 300)
        targets = F.one_hot(labels, num_classes=self.num_classes + 1)[:, :, :-1]  # [N, R, K]
        logits = cat(pred_logits, dim=1)
        loss_cls = sigmoid_focal_loss(
            logits, targets.to(logits.dtype),
            alpha=self.focal_loss_alpha, gamma=self.focal_loss_gamma, reduction="sum",
        )  # fmt: skip
        loss_box_reg = dense_box_regression_loss(
            [a.tensor for a in anchors], self.box2box_transform, pred_deltas, gt_boxes, pos_mask,
            box_reg_loss_type=self.box_reg_loss_type,
        )  # fmt: skip
        cells = Boxes.cat(anchors).tensor
        distances = torch.stack([self.box2box_transform.get_deltas(cells, b) for b in gt_boxes])  # [N, R, 4]
        ctrness = cat(pred_centerness, dim=1).squeeze(dim=2)  # [N, R]
        loss_ctr = F.binary_cross_entropy_with_logits(
            ctrness[pos_mask], centerness_targets(distances)[pos_mask], reduction="sum"
        )
        return {
            "loss_fcos_cls": loss_cls / normalizer,
            "loss_fcos_loc": loss_box_reg / normalizer,
            "loss_fcos_ctr": loss_ctr / normalizer,
        }

    def forward_inference(
        self, images: ImageList, features: list[torch.Tensor], predictions: tuple[list[torch.Tensor], ...]
    ) -> list[Instances]:
        logits, deltas, ctrness = self.transpose_dense_predictions(predictions, [self.num_classes, 4, 1])
        anchors = self.anchor_generator(features)
        results = []
        for i, image_size in enumerate(images.image_sizes):
            scores = [
                torch.sqrt(x[i].sigmoid() * c[i].sigmoid()) for x, c in zip(logits, ctrness, strict=True)
            ]
            candidates = self.decode_multi_level_predictions(
                anchors, scores, [x[i] for x in deltas], self.test_score_thresh, self.test_topk_candidates,
                image_size,
            )  # fmt: skip
            results.append(self.select_detections(candidates))
        return results


def fcos_backbone_config() -> BackboneConfig:
    """RetinaNet's ResNet-50-FPN with P6/P7 convolved from P5 (FCOS's choice)."""
    return attrs.evolve(retinanet_backbone_config(), top_block_in_feature="p5")


@attrs.define(frozen=True, kw_only=True)
class FCOSConfig(DenseDetectorConfig):
    """FCOS; defaults are detectron2's ``common/models/fcos.py`` (R50-FPN P3-P7 with P6/P7 from P5,
    GroupNorm head towers of 4 convolutions, score threshold 0.2, NMS 0.6)."""

    name: ClassVar[str] = "FCOS"
    backbone: BackboneConfig = attrs.field(
        factory=fcos_backbone_config, validator=check.instance_of(BackboneConfig)
    )
    head: RetinaNetHeadConfig = attrs.field(
        factory=lambda: RetinaNetHeadConfig(norm="GN"), validator=check.instance_of(RetinaNetHeadConfig)
    )
    center_sampling_radius: float = attrs.field(default=1.5, validator=check.at_least(0.0))
    focal_loss_alpha: float = 0.25
    focal_loss_gamma: float = attrs.field(default=2.0, validator=check.at_least(0.0))
    bbox_reg_loss_type: str = attrs.field(default="giou", validator=check.one_of(BOX_REG_LOSS_TYPES))
    test_score_thresh: float = attrs.field(default=0.2, validator=check.between(0.0, 1.0))
    test_nms_thresh: float = attrs.field(default=0.6, validator=check.between(0.0, 1.0))


@META_ARCH_REGISTRY.register(FCOSConfig)
def build_fcos(config: FCOSConfig) -> FCOS:
    """FCOS with ``FCOSHead``."""
    backbone = build_backbone(config.backbone, config.input_shape())
    channels = shared_channels(backbone.output_shape(), config.in_features, "FCOSHead")
    head = FCOSHead(
        in_channels=channels, num_classes=config.num_classes, conv_dims=[channels] * config.head.num_convs,
        norm=config.head.norm, prior_prob=config.head.prior_prob,
    )  # fmt: skip
    return FCOS(
        backbone=backbone, head=head, head_in_features=config.in_features, num_classes=config.num_classes,
        center_sampling_radius=config.center_sampling_radius, focal_loss_alpha=config.focal_loss_alpha,
        focal_loss_gamma=config.focal_loss_gamma, box_reg_loss_type=config.bbox_reg_loss_type,
        **config.inference_kwargs(), **config.input_kwargs(),
    )  # fmt: skip
