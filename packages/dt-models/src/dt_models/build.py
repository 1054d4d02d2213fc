"""From typed configs to modules: the builders of every built-in part, and ``build_model``.

The model classes never read a config; this module is the only place that maps config fields
to constructor arguments. Each builder is registered with its config class.
"""

from __future__ import annotations

import torch
from torch import nn

from dt_config import structure
from dt_models.anchor_generator import DefaultAnchorGenerator
from dt_models.backbone import (
    FPN,
    Backbone,
    BasicStem,
    LastLevelMaxPool,
    LastLevelP6P7,
    ResNet,
    make_resnet_stages,
)
from dt_models.box_regression import Box2BoxTransform
from dt_models.config.model import (
    FastRCNNConvFCHeadConfig,
    GeneralizedRCNNConfig,
    MaskRCNNConvUpsampleHeadConfig,
    ModelConfig,
    PoolerConfig,
    ProposalNetworkConfig,
    ResNetConfig,
    ResNetFPNConfig,
    RPNConfig,
    StandardROIHeadsConfig,
)
from dt_models.layers import ShapeSpec
from dt_models.matcher import Matcher
from dt_models.meta_arch import GeneralizedRCNN, ProposalNetwork
from dt_models.poolers import ROIPooler
from dt_models.proposal_generator import RPN, StandardRPNHead
from dt_models.registry import (
    BACKBONE_REGISTRY,
    META_ARCH_REGISTRY,
    PROPOSAL_GENERATOR_REGISTRY,
    ROI_BOX_HEAD_REGISTRY,
    ROI_HEADS_REGISTRY,
    ROI_MASK_HEAD_REGISTRY,
)
from dt_models.roi_heads import (
    FastRCNNConvFCHead,
    FastRCNNOutputLayers,
    MaskRCNNConvUpsampleHead,
    StandardROIHeads,
)

__all__ = ["build_backbone", "build_model", "build_pooler"]


@BACKBONE_REGISTRY.register(ResNetConfig)
def build_resnet(config: ResNetConfig, input_shape: ShapeSpec) -> ResNet:
    """ResNet/ResNeXt backbone."""
    num_stages = max(["stem", "res2", "res3", "res4", "res5"].index(f) for f in config.out_features)
    stem = BasicStem(input_shape.channels or 3, config.stem_out_channels, config.norm)
    stages = make_resnet_stages(
        depth=config.depth, stem_out_channels=config.stem_out_channels,
        res2_out_channels=config.res2_out_channels, num_groups=config.num_groups,
        width_per_group=config.width_per_group, norm=config.norm, stride_in_1x1=config.stride_in_1x1,
        res5_dilation=config.res5_dilation, deform_on_per_stage=config.deform_on_per_stage,
        deform_modulated=config.deform_modulated, deform_num_groups=config.deform_num_groups,
        num_stages=max(num_stages, 1),
    )  # fmt: skip
    return ResNet(stem=stem, stages=stages, out_features=config.out_features, freeze_at=config.freeze_at)


@BACKBONE_REGISTRY.register(ResNetFPNConfig)
def build_resnet_fpn(config: ResNetFPNConfig, input_shape: ShapeSpec) -> FPN:
    """ResNet bottom-up + FPN (+ P6 by max pooling, or P6/P7 by convolutions)."""
    bottom_up = build_resnet(config.resnet, input_shape)
    top_block: nn.Module | None = None
    if config.top_block == "max_pool":
        top_block = LastLevelMaxPool()
    elif config.top_block == "p6p7":
        source = config.top_block_in_feature
        in_channels = config.out_channels if source == "p5" else bottom_up.output_shape()["res5"].channels
        top_block = LastLevelP6P7(in_channels, config.out_channels, in_feature=source)
    return FPN(
        bottom_up=bottom_up, in_features=config.in_features, out_channels=config.out_channels,
        norm=config.norm, top_block=top_block, fuse_type=config.fuse_type,
    )  # fmt: skip


def build_backbone(config, input_shape: ShapeSpec | None = None) -> Backbone:
    """Backbone from its config (any registered backbone config); 3 input channels by default."""
    backbone = BACKBONE_REGISTRY.build(config, input_shape=input_shape or ShapeSpec(channels=3))
    if not isinstance(backbone, Backbone):
        raise TypeError(f"backbone builder for {type(config).name!r} returned {type(backbone).__name__}")
    return backbone


def build_pooler(config: PoolerConfig, in_features, input_shape: dict[str, ShapeSpec]) -> ROIPooler:
    """``ROIPooler`` over ``in_features`` (scales from their strides)."""
    return ROIPooler(
        output_size=config.resolution,
        scales=[1.0 / input_shape[f].stride for f in in_features],
        sampling_ratio=config.sampling_ratio,
        pooler_type=config.type,
    )


def _single_channels(in_features, input_shape: dict[str, ShapeSpec], who: str) -> int:
    channels = {input_shape[f].channels for f in in_features}
    if len(channels) != 1:
        raise ValueError(
            f"{who} needs feature maps of equal width, got {sorted(channels)} for {list(in_features)}"
        )
    return channels.pop()


@PROPOSAL_GENERATOR_REGISTRY.register(RPNConfig)
def build_rpn(config: RPNConfig, input_shape: dict[str, ShapeSpec]) -> RPN:
    """Region proposal network with ``StandardRPNHead`` and ``DefaultAnchorGenerator``."""
    anchors = DefaultAnchorGenerator(
        sizes=config.anchor_generator.sizes, aspect_ratios=config.anchor_generator.aspect_ratios,
        strides=[input_shape[f].stride for f in config.in_features], offset=config.anchor_generator.offset,
    )  # fmt: skip
    head = StandardRPNHead(
        in_channels=_single_channels(config.in_features, input_shape, "RPN"),
        num_anchors=anchors.num_cell_anchors[0], box_dim=anchors.box_dim, conv_dims=config.head_conv_dims,
    )  # fmt: skip
    return RPN(
        in_features=config.in_features, head=head, anchor_generator=anchors,
        anchor_matcher=Matcher(config.iou_thresholds, config.iou_labels, allow_low_quality_matches=True),
        box2box_transform=Box2BoxTransform(config.bbox_reg_weights),
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


@ROI_BOX_HEAD_REGISTRY.register(FastRCNNConvFCHeadConfig)
def build_fast_rcnn_conv_fc_head(
    config: FastRCNNConvFCHeadConfig, input_shape: ShapeSpec
) -> FastRCNNConvFCHead:
    """Box head of ``num_conv`` convs and ``num_fc`` fully connected layers."""
    return FastRCNNConvFCHead(
        input_shape, conv_dims=[config.conv_dim] * config.num_conv, fc_dims=[config.fc_dim] * config.num_fc,
        conv_norm=config.norm,
    )  # fmt: skip


@ROI_MASK_HEAD_REGISTRY.register(MaskRCNNConvUpsampleHeadConfig)
def build_mask_rcnn_conv_upsample_head(
    config: MaskRCNNConvUpsampleHeadConfig, input_shape: ShapeSpec, num_classes: int
) -> MaskRCNNConvUpsampleHead:
    """Mask head: convs, 2x transposed conv, per-class (or agnostic) predictor."""
    return MaskRCNNConvUpsampleHead(
        input_shape, num_classes=1 if config.cls_agnostic_mask else num_classes,
        conv_dims=[config.conv_dim] * (config.num_conv + 1), conv_norm=config.norm,
        loss_weight=config.loss_weight,
    )  # fmt: skip


@ROI_HEADS_REGISTRY.register(StandardROIHeadsConfig)
def build_standard_roi_heads(
    config: StandardROIHeadsConfig, input_shape: dict[str, ShapeSpec]
) -> StandardROIHeads:
    """Box head + predictor, and a mask head when ``config.mask_head`` is set."""
    channels = _single_channels(config.in_features, input_shape, "StandardROIHeads")
    resolution = config.box_pooler.resolution
    box_head = ROI_BOX_HEAD_REGISTRY.build(
        config.box_head, input_shape=ShapeSpec(channels=channels, height=resolution, width=resolution)
    )
    predictor = config.box_predictor
    box_predictor = FastRCNNOutputLayers(
        input_shape=box_head.output_shape, box2box_transform=Box2BoxTransform(predictor.bbox_reg_weights),
        num_classes=config.num_classes, test_score_thresh=config.score_thresh_test,
        test_nms_thresh=config.nms_thresh_test, test_topk_per_image=config.detections_per_image,
        cls_agnostic_bbox_reg=predictor.cls_agnostic_bbox_reg, smooth_l1_beta=predictor.smooth_l1_beta,
        box_reg_loss_type=predictor.bbox_reg_loss_type,
        loss_weight={"loss_cls": 1.0, "loss_box_reg": predictor.bbox_reg_loss_weight},
    )  # fmt: skip
    mask_parts = {}
    if config.mask_head is not None:
        mask_resolution = config.mask_pooler.resolution
        mask_parts = dict(
            mask_in_features=config.in_features,
            mask_pooler=build_pooler(config.mask_pooler, config.in_features, input_shape),
            mask_head=ROI_MASK_HEAD_REGISTRY.build(
                config.mask_head, input_shape=ShapeSpec(channels=channels, height=mask_resolution,
                width=mask_resolution), num_classes=config.num_classes,
            ),
        )  # fmt: skip
    return StandardROIHeads(
        num_classes=config.num_classes, batch_size_per_image=config.batch_size_per_image,
        positive_fraction=config.positive_fraction,
        proposal_matcher=Matcher(config.iou_thresholds, config.iou_labels, allow_low_quality_matches=False),
        proposal_append_gt=config.proposal_append_gt, box_in_features=config.in_features,
        box_pooler=build_pooler(config.box_pooler, config.in_features, input_shape), box_head=box_head,
        box_predictor=box_predictor, **mask_parts,
    )  # fmt: skip


@META_ARCH_REGISTRY.register(GeneralizedRCNNConfig)
def build_generalized_rcnn(config: GeneralizedRCNNConfig) -> GeneralizedRCNN:
    """Faster / Mask R-CNN."""
    backbone = build_backbone(config.backbone, ShapeSpec(channels=len(config.pixel_mean)))
    shapes = backbone.output_shape()
    return GeneralizedRCNN(
        backbone=backbone,
        proposal_generator=PROPOSAL_GENERATOR_REGISTRY.build(config.proposal_generator, input_shape=shapes),
        roi_heads=ROI_HEADS_REGISTRY.build(config.roi_heads, input_shape=shapes),
        pixel_mean=config.pixel_mean, pixel_std=config.pixel_std, input_format=config.input_format,
    )  # fmt: skip


@META_ARCH_REGISTRY.register(ProposalNetworkConfig)
def build_proposal_network(config: ProposalNetworkConfig) -> ProposalNetwork:
    """RPN-only model."""
    backbone = build_backbone(config.backbone, ShapeSpec(channels=len(config.pixel_mean)))
    return ProposalNetwork(
        backbone=backbone,
        proposal_generator=PROPOSAL_GENERATOR_REGISTRY.build(
            config.proposal_generator, input_shape=backbone.output_shape()
        ),
        pixel_mean=config.pixel_mean, pixel_std=config.pixel_std, input_format=config.input_format,
    )  # fmt: skip


def build_model(config: ModelConfig | dict, device: str | torch.device = "cpu") -> nn.Module:
    """The model described by ``config`` (a ``ModelConfig`` or plain data), on ``device``.

    Raises:
        ConfigError: if ``config`` is plain data that does not describe a valid model.
    """
    if not isinstance(config, ModelConfig):
        config = structure(ModelConfig, config, what="model config")
    return META_ARCH_REGISTRY.build(config).to(device)
