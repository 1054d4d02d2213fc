"""Region Proposal Network (Ren et al. 2015): ``StandardRPNHead`` and the ``RPN`` proposal generator;
its config ``RPNConfig`` (registered as ``RPN``) and ``build_rpn``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from dt_config import validators as check
from dt_models.anchor_generator import AnchorGeneratorConfig, DefaultAnchorGenerator, build_anchor_generator
from dt_models.box_regression import BOX_REG_LOSS_TYPES, Box2BoxTransform, dense_box_regression_loss
from dt_models.layers import Conv2d, ShapeSpec, cat, shared_channels
from dt_models.matcher import Matcher, check_matcher_fields
from dt_models.proposal_generator.proposal_utils import find_top_rpn_proposals
from dt_models.registry import PROPOSAL_GENERATOR_REGISTRY, ProposalGeneratorConfig
from dt_models.sampling import subsample_labels
from dt_structures import Boxes, ImageList, Instances, pairwise_iou

__all__ = ["RPN", "RPNConfig", "StandardRPNHead", "build_rpn"]


class StandardRPNHead(nn.Module):
    """Shared 3x3 convolution(s) + ReLU, then 1x1 convolutions for objectness and box deltas.

    Args:
        in_channels: channels of every input feature map.
        num_anchors: cell anchors per location (the same on every map).
        box_dim: 4 for XYXY deltas.
        conv_dims: output channels of the shared convolutions; ``-1`` keeps ``in_channels``.
    """

    def __init__(
        self, *, in_channels: int, num_anchors: int, box_dim: int = 4, conv_dims: Sequence[int] = (-1,)
    ) -> None:
        super().__init__()
        if num_anchors <= 0:
            raise ValueError(f"num_anchors must be > 0, got {num_anchors}")
        if not conv_dims:
            raise ValueError("conv_dims must have at least one entry")
        dims = [in_channels if d == -1 else d for d in conv_dims]
        if any(d <= 0 for d in dims):
            raise ValueError(f"conv_dims must be positive or -1, got {list(conv_dims)}")
        if len(dims) == 1:
            self.conv = Conv2d(in_channels, dims[0], 3, padding=1, activation=nn.ReLU())
        else:
            self.conv = nn.Sequential()
            channels = in_channels
            for k, dim in enumerate(dims):
                self.conv.add_module(f"conv{k}", Conv2d(channels, dim, 3, padding=1, activation=nn.ReLU()))
                channels = dim
        self.objectness_logits = nn.Conv2d(dims[-1], num_anchors, 1)
        self.anchor_deltas = nn.Conv2d(dims[-1], num_anchors * box_dim, 1)
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.normal_(layer.weight, std=0.01)
                nn.init.constant_(layer.bias, 0)

    def forward(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per map ``Tensor[N, C, Hi, Wi]``: logits ``[N, A, Hi, Wi]`` and deltas ``[N, A*4, Hi, Wi]``."""
        logits, deltas = [], []
        for x in features:
            t = self.conv(x)
            logits.append(self.objectness_logits(t))
            deltas.append(self.anchor_deltas(t))
        return logits, deltas


class RPN(nn.Module):
    """Region proposal network: scores and refines anchors, returns the top proposals per image.

    Args:
        in_features: names of the feature maps it runs on.
        head: maps the feature list to per-level objectness logits and anchor deltas.
        anchor_generator: anchors of every feature map.
        anchor_matcher: labels anchors as foreground/background/ignored against ground truth.
        box2box_transform: anchor delta coding.
        batch_size_per_image, positive_fraction: anchors sampled per image for the losses.
        pre_nms_topk, post_nms_topk: ``(train, test)`` counts, per level before NMS, per image after.
        nms_thresh: IoU threshold of the per-level NMS.
        min_box_size: proposals with a side <= this (input pixels) are dropped.
        anchor_boundary_thresh: anchors more than this outside the image are ignored (< 0: never).
        loss_weight: ``{"loss_rpn_cls": w, "loss_rpn_loc": w}`` or one weight for both.
        box_reg_loss_type: ``"smooth_l1"``, ``"giou"``, ``"diou"`` or ``"ciou"``.
        smooth_l1_beta: beta of the smooth-L1 loss (0: L1).
    """

    find_top_proposals = staticmethod(find_top_rpn_proposals)
    """Selects each image's proposals from the decoded boxes (a rotated RPN swaps in its own)."""

    def __init__(
        self,
        *,
        in_features: Sequence[str],
        head: nn.Module,
        anchor_generator: DefaultAnchorGenerator,
        anchor_matcher: Matcher,
        box2box_transform: Box2BoxTransform,
        batch_size_per_image: int,
        positive_fraction: float,
        pre_nms_topk: tuple[int, int],
        post_nms_topk: tuple[int, int],
        nms_thresh: float = 0.7,
        min_box_size: float = 0.0,
        anchor_boundary_thresh: float = -1.0,
        loss_weight: float | dict[str, float] = 1.0,
        box_reg_loss_type: str = "smooth_l1",
        smooth_l1_beta: float = 0.0,
    ) -> None:
        super().__init__()
        if len(pre_nms_topk) != 2 or len(post_nms_topk) != 2:
            raise ValueError("pre_nms_topk and post_nms_topk must be (train, test) pairs")
        self.in_features = list(in_features)
        self.rpn_head = head
        self.anchor_generator = anchor_generator
        self.anchor_matcher = anchor_matcher
        self.box2box_transform = box2box_transform
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.pre_nms_topk = {True: pre_nms_topk[0], False: pre_nms_topk[1]}
        self.post_nms_topk = {True: post_nms_topk[0], False: post_nms_topk[1]}
        self.nms_thresh = nms_thresh
        self.min_box_size = float(min_box_size)
        self.anchor_boundary_thresh = anchor_boundary_thresh
        if isinstance(loss_weight, (int, float)):
            loss_weight = {"loss_rpn_cls": float(loss_weight), "loss_rpn_loc": float(loss_weight)}
        self.loss_weight = dict(loss_weight)
        self.box_reg_loss_type = box_reg_loss_type
        self.smooth_l1_beta = smooth_l1_beta

    @torch.no_grad()
    def label_and_sample_anchors(
        self, anchors: list[Boxes], gt_instances: list[Instances]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per image: anchor labels ``Tensor[R]`` (1 fg, 0 bg, -1 ignored; a sample of
        ``batch_size_per_image``) and the matched ground-truth box of each anchor ``Tensor[R, 4]``."""
        all_anchors = Boxes(cat([a.tensor for a in anchors]))
        gt_labels, matched_gt_boxes = [], []
        for instances in gt_instances:
            gt_boxes = instances.gt_boxes
            image_h, image_w = instances.image_size
            matched_idxs, labels = self.anchor_matcher(pairwise_iou(gt_boxes, all_anchors))
            labels = labels.to(dtype=torch.int64)
            if self.anchor_boundary_thresh >= 0:
                a, t = all_anchors.tensor, self.anchor_boundary_thresh
                inside = (a[:, 0] >= -t) & (a[:, 1] >= -t) & (a[:, 2] < image_w + t) & (a[:, 3] < image_h + t)
                labels[~inside] = -1
            pos_idx, neg_idx = subsample_labels(labels, self.batch_size_per_image, self.positive_fraction, 0)
            labels = torch.full_like(labels, -1)
            labels[pos_idx] = 1
            labels[neg_idx] = 0
            if len(gt_boxes) == 0:
                matched = torch.zeros_like(all_anchors.tensor)
            else:
                matched = gt_boxes.tensor[matched_idxs]
            gt_labels.append(labels)
            matched_gt_boxes.append(matched)
        return gt_labels, matched_gt_boxes

    def losses(
        self,
        anchors: list[Boxes],
        pred_objectness_logits: list[torch.Tensor],
        gt_labels: list[torch.Tensor],
        pred_anchor_deltas: list[torch.Tensor],
        gt_boxes: list[torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """Objectness (binary cross-entropy) and box losses, normalized by the sampled anchor count."""
        num_images = len(gt_labels)
        labels = torch.stack(gt_labels)  # [N, R]
        pos_mask = labels == 1
        loc_loss = dense_box_regression_loss(
            [a.tensor for a in anchors], self.box2box_transform, pred_anchor_deltas, gt_boxes, pos_mask,
            box_reg_loss_type=self.box_reg_loss_type, smooth_l1_beta=self.smooth_l1_beta,
        )  # fmt: skip
        valid = labels >= 0
        cls_loss = F.binary_cross_entropy_with_logits(
            cat(pred_objectness_logits, dim=1)[valid], labels[valid].to(torch.float32), reduction="sum"
        )
        normalizer = self.batch_size_per_image * num_images
        losses = {"loss_rpn_cls": cls_loss / normalizer, "loss_rpn_loc": loc_loss / normalizer}
        return {k: v * self.loss_weight.get(k, 1.0) for k, v in losses.items()}

    def forward(
        self,
        images: ImageList,
        features: dict[str, torch.Tensor],
        gt_instances: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        """Proposals per image (``proposal_boxes``, ``objectness_logits``) and, in training, losses."""
        feats = [features[f] for f in self.in_features]
        anchors = self.anchor_generator(feats)
        logits, deltas = self.rpn_head(feats)
        # [N, A, Hi, Wi] -> [N, Hi*Wi*A], the anchor order of the generator
        logits = [score.permute(0, 2, 3, 1).flatten(1) for score in logits]
        box_dim = self.anchor_generator.box_dim
        # [N, A*B, Hi, Wi] -> [N, Hi*Wi*A, B]
        deltas = [
            x.view(x.shape[0], -1, box_dim, x.shape[-2], x.shape[-1]).permute(0, 3, 4, 1, 2).flatten(1, -2)
            for x in deltas
        ]
        losses: dict[str, torch.Tensor] = {}
        if self.training:
            if gt_instances is None:
                raise ValueError("RPN needs gt_instances in training")
            gt_labels, gt_boxes = self.label_and_sample_anchors(anchors, gt_instances)
            losses = self.losses(anchors, logits, gt_labels, deltas, gt_boxes)
        proposals = self.predict_proposals(anchors, logits, deltas, images.image_sizes)
        return proposals, losses

    @torch.no_grad()
    def predict_proposals(
        self,
        anchors: list[Boxes],
        pred_objectness_logits: list[torch.Tensor],
        pred_anchor_deltas: list[torch.Tensor],
        image_sizes: list[tuple[int, int]],
    ) -> list[Instances]:
        """Decode the deltas of every anchor and select the top proposals (treated as constants)."""
        proposals = []
        for anchors_i, deltas_i in zip(anchors, pred_anchor_deltas, strict=True):
            n, r, b = deltas_i.shape
            expanded = anchors_i.tensor.unsqueeze(0).expand(n, -1, -1).reshape(-1, b)
            proposals.append(
                self.box2box_transform.apply_deltas(deltas_i.reshape(-1, b), expanded).view(n, r, b)
            )
        return self.find_top_proposals(
            proposals, pred_objectness_logits, image_sizes, self.nms_thresh,
            self.pre_nms_topk[self.training], self.post_nms_topk[self.training], self.min_box_size,
            self.training,
        )  # fmt: skip


@attrs.define(frozen=True, kw_only=True)
class RPNConfig(ProposalGeneratorConfig):
    """Region proposal network with ``StandardRPNHead`` (``head_conv_dims``: -1 keeps the width)."""

    name: ClassVar[str] = "RPN"
    in_features: tuple[str, ...] = attrs.field(
        default=("p2", "p3", "p4", "p5", "p6"), validator=check.non_empty
    )
    head_conv_dims: tuple[int, ...] = attrs.field(default=(-1,), validator=check.non_empty)
    anchor_generator: AnchorGeneratorConfig = attrs.field(
        factory=AnchorGeneratorConfig, validator=check.instance_of(AnchorGeneratorConfig)
    )
    iou_thresholds: tuple[float, ...] = (0.3, 0.7)
    iou_labels: tuple[int, ...] = (0, -1, 1)
    batch_size_per_image: int = attrs.field(default=256, validator=check.at_least(1))
    positive_fraction: float = attrs.field(default=0.5, validator=check.between(0.0, 1.0))
    bbox_reg_weights: tuple[float, ...] = attrs.field(default=(1.0, 1.0, 1.0, 1.0), validator=check.length(4))
    bbox_reg_loss_type: str = attrs.field(default="smooth_l1", validator=check.one_of(BOX_REG_LOSS_TYPES))
    smooth_l1_beta: float = attrs.field(default=0.0, validator=check.at_least(0.0))
    loss_weight: float = 1.0
    bbox_reg_loss_weight: float = 1.0
    pre_nms_topk_train: int = attrs.field(default=2000, validator=check.at_least(1))
    pre_nms_topk_test: int = attrs.field(default=1000, validator=check.at_least(1))
    post_nms_topk_train: int = attrs.field(default=1000, validator=check.at_least(1))
    post_nms_topk_test: int = attrs.field(default=1000, validator=check.at_least(1))
    nms_thresh: float = attrs.field(default=0.7, validator=check.between(0.0, 1.0))
    min_box_size: float = attrs.field(default=0.0, validator=check.at_least(0.0))
    boundary_thresh: float = -1.0

    def __attrs_post_init__(self) -> None:
        check_matcher_fields(self.iou_thresholds, self.iou_labels)
        self.anchor_generator.check_num_features(len(self.in_features), "anchor_generator.")


@PROPOSAL_GENERATOR_REGISTRY.register(RPNConfig)
def build_rpn(config: RPNConfig, input_shape: dict[str, ShapeSpec]) -> RPN:
    """Region proposal network with ``StandardRPNHead`` and ``DefaultAnchorGenerator``."""
    anchors = build_anchor_generator(
        config.anchor_generator, [input_shape[f].stride for f in config.in_features]
    )
    head = StandardRPNHead(
        in_channels=shared_channels(input_shape, config.in_features, "RPN"),
        num_anchors=anchors.num_cell_anchors[0], box_dim=anchors.box_dim, conv_dims=config.head_conv_dims,
    )  # fmt: skip
    return RPN(
        in_features=config.in_features,
        head=head,
        anchor_generator=anchors,
        box2box_transform=Box2BoxTransform(config.bbox_reg_weights),
        **rpn_training_kwargs(config),
    )


def rpn_training_kwargs(config: RPNConfig) -> dict:
    """The ``RPN`` constructor arguments that every RPN config variant fills the same way (matching,
    sampling, top-k, NMS, losses)."""
    return dict(
        anchor_matcher=Matcher(config.iou_thresholds, config.iou_labels, allow_low_quality_matches=True),
        batch_size_per_image=config.batch_size_per_image, positive_fraction=config.positive_fraction,
        pre_nms_topk=(config.pre_nms_topk_train, config.pre_nms_topk_test),
        post_nms_topk=(config.post_nms_topk_train, config.post_nms_topk_test),
        nms_thresh=config.nms_thresh, min_box_size=config.min_box_size,
        anchor_boundary_thresh=config.boundary_thresh,
        loss_weight={
            "loss_rpn_cls": config.loss_weight,
            "loss_rpn_loc": config.bbox_reg_loss_weight * config.loss_weight,
        },
        box_reg_loss_type=config.bbox_reg_loss_type, smooth_l1_beta=config.smooth_l1_beta,
    )  # fmt: skip
