"""RetinaNet (Lin et al. 2017): a dense anchor-based detector trained with the focal loss; its config
``RetinaNetConfig`` (registered as ``RetinaNet``) and ``build_retinanet``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import torch
from torch.nn import functional as F

from dt_config import validators as check
from dt_models.anchor_generator import AnchorGeneratorConfig, DefaultAnchorGenerator, build_anchor_generator
from dt_models.backbone import Backbone
from dt_models.box_regression import BOX_REG_LOSS_TYPES, Box2BoxTransform, dense_box_regression_loss
from dt_models.build import build_backbone
from dt_models.layers import cat, shared_channels
from dt_models.layers.focal_loss import sigmoid_focal_loss
from dt_models.matcher import Matcher, check_matcher_fields
from dt_models.meta_arch.dense_detector import DenseDetector, DenseDetectorConfig
from dt_models.meta_arch.retinanet_head import RetinaNetHead, RetinaNetHeadConfig
from dt_models.registry import META_ARCH_REGISTRY
from dt_structures import Boxes, ImageList, Instances, pairwise_iou

__all__ = ["RETINANET_ANCHOR_SIZES", "RetinaNet", "RetinaNetConfig", "build_retinanet"]

RETINANET_ANCHOR_SIZES = tuple(tuple(x * 2 ** (k / 3.0) for k in range(3)) for x in (32, 64, 128, 256, 512))
"""Three octave scales per level, ``x * 2**(k/3)`` for P3-P7 base sizes 32..512 (Base-RetinaNet.yaml)."""


class RetinaNet(DenseDetector):
    """Anchors on every level, labelled by IoU with the ground truth; sigmoid focal loss on all
    non-ignored anchors and a box loss on the foreground ones, both divided by an EMA of the
    foreground count (initially 100, momentum 0.9).

    Args:
        backbone, head, head_in_features: as for :class:`DenseDetector`; ``head`` returns per-level
            logits ``[N, A*K, Hi, Wi]`` and deltas ``[N, A*4, Hi, Wi]``.
        anchor_generator: anchors of the ``head_in_features`` maps.
        box2box_transform: anchor delta coding.
        anchor_matcher: labels anchors 1 (foreground), 0 (background) or -1 (ignored).
        num_classes: K foreground classes.
        focal_loss_alpha, focal_loss_gamma: of :func:`sigmoid_focal_loss`.
        smooth_l1_beta, box_reg_loss_type: the box loss (``"smooth_l1"``, ``"giou"``, ...).
        Other arguments as for :class:`DenseDetector`.
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        head: RetinaNetHead,
        head_in_features: Sequence[str],
        anchor_generator: DefaultAnchorGenerator,
        box2box_transform: Box2BoxTransform,
        anchor_matcher: Matcher,
        num_classes: int,
        focal_loss_alpha: float = 0.25,
        focal_loss_gamma: float = 2.0,
        smooth_l1_beta: float = 0.0,
        box_reg_loss_type: str = "smooth_l1",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            backbone=backbone, head=head, head_in_features=head_in_features,
            box2box_transform=box2box_transform, **kwargs,
        )  # fmt: skip
        if box_reg_loss_type not in BOX_REG_LOSS_TYPES:
            raise ValueError(
                f"box_reg_loss_type must be one of {BOX_REG_LOSS_TYPES}, got {box_reg_loss_type!r}"
            )
        self.anchor_generator = anchor_generator
        self.anchor_matcher = anchor_matcher
        self.num_classes = num_classes
        self.focal_loss_alpha = focal_loss_alpha
        self.focal_loss_gamma = focal_loss_gamma
        self.smooth_l1_beta = smooth_l1_beta
        self.box_reg_loss_type = box_reg_loss_type

    def forward_training(
        self,
        images: ImageList,
        features: list[torch.Tensor],
        predictions: tuple[list[torch.Tensor], ...],
        gt_instances: list[Instances],
    ) -> dict[str, torch.Tensor]:
        """``loss_cls`` (focal) and ``loss_box_reg``."""
        pred_logits, pred_deltas = self.transpose_dense_predictions(predictions, [self.num_classes, 4])
        anchors = self.anchor_generator(features)
        gt_labels, gt_boxes = self.label_anchors(anchors, gt_instances)
        return self.losses(anchors, pred_logits, gt_labels, pred_deltas, gt_boxes)

    def losses(
        self,
        anchors: list[Boxes],
        pred_logits: list[torch.Tensor],
        gt_labels: list[torch.Tensor],
        pred_anchor_deltas: list[torch.Tensor],
        gt_boxes: list[torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """Losses from per-level ``pred_logits`` ``[N, Ri, K]`` and ``pred_anchor_deltas`` ``[N, Ri, 4]``
        and per-image ``gt_labels`` ``[R]`` (in ``{-1, 0..K}``, K: background) and ``gt_boxes`` ``[R, 4]``."""
        labels = torch.stack(gt_labels)  # [N, R]
        valid_mask = labels >= 0
        pos_mask = valid_mask & (labels != self.num_classes)
        normalizer = self.ema_update("loss_normalizer", max(pos_mask.sum().item(), 1), 100)
        # one-hot over K + 1 classes; the background column gets no loss
        targets = F.one_hot(labels[valid_mask], num_classes=self.num_classes + 1)[:, :-1]
        logits = cat(pred_logits, dim=1)
        loss_cls = sigmoid_focal_loss(
            logits[valid_mask], targets.to(logits.dtype),
            alpha=self.focal_loss_alpha, gamma=self.focal_loss_gamma, reduction="sum",
        )  # fmt: skip
        loss_box_reg = dense_box_regression_loss(
            [a.tensor for a in anchors], self.box2box_transform, pred_anchor_deltas, gt_boxes, pos_mask,
            box_reg_loss_type=self.box_reg_loss_type, smooth_l1_beta=self.smooth_l1_beta,
        )  # fmt: skip
        return {"loss_cls": loss_cls / normalizer, "loss_box_reg": loss_box_reg / normalizer}

    @torch.no_grad()
    def label_anchors(
        self, anchors: list[Boxes], gt_instances: list[Instances]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per image: the class of every anchor ``Tensor[R]`` (-1 ignored, K background) and its
        matched ground-truth box ``Tensor[R, 4]`` (meaningful for foreground anchors only)."""
        all_anchors = Boxes.cat(anchors)
        gt_labels, matched_gt_boxes = [], []
        for instances in gt_instances:
            matched_idxs, anchor_labels = self.anchor_matcher(pairwise_iou(instances.gt_boxes, all_anchors))
            if len(instances) > 0:
                matched = instances.gt_boxes.tensor[matched_idxs]
                labels = instances.gt_classes[matched_idxs]
                labels[anchor_labels == 0] = self.num_classes
                labels[anchor_labels == -1] = -1
            else:
                matched = torch.zeros_like(all_anchors.tensor)
                labels = torch.full_like(matched_idxs, self.num_classes)
            gt_labels.append(labels)
            matched_gt_boxes.append(matched)
        return gt_labels, matched_gt_boxes

    def forward_inference(
        self, images: ImageList, features: list[torch.Tensor], predictions: tuple[list[torch.Tensor], ...]
    ) -> list[Instances]:
        pred_logits, pred_deltas = self.transpose_dense_predictions(predictions, [self.num_classes, 4])
        anchors = self.anchor_generator(features)
        results = []
        for i, image_size in enumerate(images.image_sizes):
            candidates = self.decode_multi_level_predictions(
                anchors, [x[i].sigmoid() for x in pred_logits], [x[i] for x in pred_deltas],
                self.test_score_thresh, self.test_topk_candidates, image_size,
            )  # fmt: skip
            results.append(self.select_detections(candidates))
        return results


@attrs.define(frozen=True, kw_only=True)
class RetinaNetConfig(DenseDetectorConfig):
    """RetinaNet; defaults are detectron2's Base-RetinaNet.yaml (R50-FPN P3-P7, 9 anchors per cell)."""

    name: ClassVar[str] = "RetinaNet"
    head: RetinaNetHeadConfig = attrs.field(
        factory=RetinaNetHeadConfig, validator=check.instance_of(RetinaNetHeadConfig)
    )
    anchor_generator: AnchorGeneratorConfig = attrs.field(
        factory=lambda: AnchorGeneratorConfig(sizes=RETINANET_ANCHOR_SIZES),
        validator=check.instance_of(AnchorGeneratorConfig),
    )
    iou_thresholds: tuple[float, ...] = (0.4, 0.5)
    iou_labels: tuple[int, ...] = (0, -1, 1)
    bbox_reg_weights: tuple[float, ...] = attrs.field(default=(1.0, 1.0, 1.0, 1.0), validator=check.length(4))
    bbox_reg_loss_type: str = attrs.field(default="smooth_l1", validator=check.one_of(BOX_REG_LOSS_TYPES))
    smooth_l1_beta: float = attrs.field(default=0.0, validator=check.at_least(0.0))
    focal_loss_alpha: float = 0.25
    focal_loss_gamma: float = attrs.field(default=2.0, validator=check.at_least(0.0))

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        check_matcher_fields(self.iou_thresholds, self.iou_labels)
        self.anchor_generator.check_num_features(len(self.in_features), "anchor_generator.")


@META_ARCH_REGISTRY.register(RetinaNetConfig)
def build_retinanet(config: RetinaNetConfig) -> RetinaNet:
    """RetinaNet with ``RetinaNetHead`` and ``DefaultAnchorGenerator``."""
    backbone = build_backbone(config.backbone, config.input_shape())
    shapes = backbone.output_shape()
    anchor_generator = build_anchor_generator(
        config.anchor_generator, [shapes[f].stride for f in config.in_features]
    )
    channels = shared_channels(shapes, config.in_features, "RetinaNetHead")
    head = RetinaNetHead(
        in_channels=channels, num_classes=config.num_classes,
        num_anchors=anchor_generator.num_cell_anchors[0], conv_dims=[channels] * config.head.num_convs,
        norm=config.head.norm, prior_prob=config.head.prior_prob, num_levels=len(config.in_features),
    )  # fmt: skip
    return RetinaNet(
        backbone=backbone, head=head, head_in_features=config.in_features, anchor_generator=anchor_generator,
        box2box_transform=Box2BoxTransform(config.bbox_reg_weights),
        anchor_matcher=Matcher(config.iou_thresholds, config.iou_labels, allow_low_quality_matches=True),
        num_classes=config.num_classes, focal_loss_alpha=config.focal_loss_alpha,
        focal_loss_gamma=config.focal_loss_gamma, smooth_l1_beta=config.smooth_l1_beta,
        box_reg_loss_type=config.bbox_reg_loss_type, **config.inference_kwargs(), **config.input_kwargs(),
    )  # fmt: skip
