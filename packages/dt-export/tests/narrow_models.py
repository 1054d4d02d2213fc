"""Narrow models of every built-in family with deterministic random weights (seeded initialization),
small enough that exporting one takes a few seconds: the export tests' models besides the golden
Mask R-CNN. ``NARROW_MODELS`` maps a family test name to its model config."""

from __future__ import annotations

import attrs
import torch

from dt_models import build_model
from dt_models.config import (
    AnchorGeneratorConfig,
    CascadeROIHeadsConfig,
    FastRCNNConvFCHeadConfig,
    FastRCNNOutputLayersConfig,
    GeneralizedRCNNConfig,
    KeypointBranchConfig,
    KRCNNConvDeconvUpsampleHeadConfig,
    MaskBranchConfig,
    MaskRCNNConvUpsampleHeadConfig,
    MViTConfig,
    MViTFPNConfig,
    Res5HeadConfig,
    Res5ROIHeadsConfig,
    ResNetConfig,
    ResNetFPNConfig,
    RPNConfig,
    StandardROIHeadsConfig,
    SwinConfig,
    SwinFPNConfig,
    ViTConfig,
    ViTSimpleFeaturePyramidConfig,
)
from dt_models.meta_arch import FCOSConfig, PanopticFPNConfig, RetinaNetConfig, SemanticSegmentorConfig
from dt_models.meta_arch.retinanet_head import RetinaNetHeadConfig
from dt_models.meta_arch.sem_seg_head import SemSegFPNHeadConfig
from dt_models.proposal_generator import RRPNConfig
from dt_models.roi_heads import RROIHeadsConfig
from dt_models.rotated_anchor_generator import RotatedAnchorGeneratorConfig

__all__ = ["NARROW_MODELS", "narrow_model"]

_NARROW = {"width_per_group": 4, "stem_out_channels": 8, "res2_out_channels": 16}
_RPN = RPNConfig(
    anchor_generator=AnchorGeneratorConfig(sizes=((16.0,), (32.0,), (64.0,), (128.0,), (256.0,))),
    pre_nms_topk_test=200, post_nms_topk_test=60,
)  # fmt: skip
_FPN = ResNetFPNConfig(resnet=ResNetConfig(**_NARROW), out_channels=16)
_MASK = {"mask": MaskBranchConfig(head=MaskRCNNConvUpsampleHeadConfig(conv_dim=8, num_conv=2))}
_KEYPOINT = {
    "keypoint": KeypointBranchConfig(
        head=KRCNNConvDeconvUpsampleHeadConfig(num_keypoints=5, conv_dims=(8, 8))
    )
}


def _heads(**changes) -> StandardROIHeadsConfig:
    return StandardROIHeadsConfig(
        num_classes=3, score_thresh_test=0.0, box_head=FastRCNNConvFCHeadConfig(fc_dim=32), **changes
    )


def _rcnn(roi_heads, backbone=_FPN) -> GeneralizedRCNNConfig:
    return GeneralizedRCNNConfig(backbone=backbone, proposal_generator=_RPN, roi_heads=roi_heads)


def _cascade() -> GeneralizedRCNNConfig:
    predictors = tuple(
        FastRCNNOutputLayersConfig(
            cls_agnostic_bbox_reg=True, bbox_reg_weights=(10.0 * k,) * 2 + (5.0 * k,) * 2
        )
        for k in (1, 2, 3)
    )
    heads = CascadeROIHeadsConfig(
        num_classes=3, score_thresh_test=0.0, stage_iou_thresholds=(0.5, 0.6, 0.7),
        box_head=FastRCNNConvFCHeadConfig(fc_dim=16), box_predictors=predictors, branches=_MASK,
    )  # fmt: skip
    return _rcnn(heads)


def _c4() -> GeneralizedRCNNConfig:
    return GeneralizedRCNNConfig(
        backbone=ResNetConfig(depth=50, out_features=("res4",), **_NARROW),
        proposal_generator=attrs.evolve(
            _RPN, in_features=("res4",), anchor_generator=AnchorGeneratorConfig(sizes=((16.0, 32.0, 64.0),))
        ),
        roi_heads=Res5ROIHeadsConfig(
            num_classes=3,
            score_thresh_test=0.0,
            in_features=("res4",),
            res5=Res5HeadConfig(width_per_group=4, res2_out_channels=16),
            mask_head=MaskRCNNConvUpsampleHeadConfig(num_conv=0, conv_dim=8),
        ),  # fmt: skip
    )


def _rotated() -> GeneralizedRCNNConfig:
    """Rotated Faster R-CNN: RRPN anchors at three angles, RROIHeads."""
    rrpn = RRPNConfig(
        anchor_generator=RotatedAnchorGeneratorConfig(
            sizes=((16.0,), (32.0,), (64.0,), (128.0,), (256.0,)), angles=((-60.0, 0.0, 60.0),)
        ),
        pre_nms_topk_test=200, post_nms_topk_test=60,
    )  # fmt: skip
    heads = RROIHeadsConfig(
        num_classes=3, score_thresh_test=0.0, box_head=FastRCNNConvFCHeadConfig(fc_dim=32)
    )
    return GeneralizedRCNNConfig(backbone=_FPN, proposal_generator=rrpn, roi_heads=heads)


# the transformer backbones as ViTDet uses them: every image padded to one square (the test images fit)
SQUARE_PAD = 448


_VIT = ViTConfig(
    img_size=SQUARE_PAD, embed_dim=32, depth=2, num_heads=2, window_size=7, window_block_indexes=(0,),
    drop_path_rate=0.0,
)  # fmt: skip
_MVIT = MViTConfig(
    img_size=SQUARE_PAD, embed_dim=8, depth=4, last_block_indexes=(0, 1, 2, 3), adaptive_window_size=28
)
_SWIN = SwinConfig(embed_dim=8, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2), drop_path_rate=0.0)


_DENSE_FPN = ResNetFPNConfig(
    resnet=ResNetConfig(out_features=("res3", "res4", "res5"), **_NARROW),
    in_features=("res3", "res4", "res5"), out_channels=16, top_block="p6p7",
)  # fmt: skip
_SEM_SEG_HEAD = SemSegFPNHeadConfig(num_classes=4, conv_dims=8, norm="")

NARROW_MODELS = {
    "keypoint_rcnn": lambda: _rcnn(_heads(branches=_KEYPOINT)),
    "cascade_mask_rcnn": _cascade,
    "mask_rcnn_c4": _c4,
    "rotated_faster_rcnn": _rotated,
    "mask_rcnn_vit": lambda: _rcnn(
        _heads(branches=_MASK),
        ViTSimpleFeaturePyramidConfig(net=_VIT, out_channels=16, square_pad=SQUARE_PAD),
    ),
    "mask_rcnn_mvitv2": lambda: _rcnn(
        _heads(branches=_MASK), MViTFPNConfig(mvit=_MVIT, out_channels=16, square_pad=SQUARE_PAD)
    ),
    "mask_rcnn_swin": lambda: _rcnn(
        _heads(branches=_MASK), SwinFPNConfig(swin=_SWIN, out_channels=16, square_pad=SQUARE_PAD)
    ),
    "retinanet": lambda: RetinaNetConfig(
        backbone=_DENSE_FPN,
        num_classes=3,
        head=RetinaNetHeadConfig(num_convs=1),
        test_score_thresh=0.005,
        anchor_generator=AnchorGeneratorConfig(sizes=((16.0, 24.0),), aspect_ratios=((1.0,),)),
    ),  # fmt: skip
    "fcos": lambda: FCOSConfig(
        backbone=attrs.evolve(_DENSE_FPN, top_block_in_feature="p5"),
        num_classes=3,
        head=RetinaNetHeadConfig(num_convs=1, norm=""),
        test_score_thresh=0.005,
    ),  # fmt: skip
    "semantic_fpn": lambda: SemanticSegmentorConfig(backbone=_FPN, sem_seg_head=_SEM_SEG_HEAD),
    "panoptic_fpn": lambda: PanopticFPNConfig(
        backbone=_FPN,
        proposal_generator=_RPN,
        roi_heads=_heads(branches=_MASK),
        sem_seg_head=_SEM_SEG_HEAD,
        combine_stuff_area_thresh=64,
        combine_instances_score_thresh=0.2,
    ),  # fmt: skip
}


def narrow_model(name: str) -> torch.nn.Module:
    """The ``NARROW_MODELS[name]`` model in eval mode, its weights initialized from seed 0; keypoint
    logits scaled to about unit size (random weights give logits in the thousands, whose softmax
    keypoint scores overflow to inf in the eager model as in the exported one)."""
    torch.manual_seed(0)
    model = build_model(NARROW_MODELS[name]()).eval()
    branches = getattr(model.roi_heads, "branches", {}) if hasattr(model, "roi_heads") else {}
    if "keypoint" in branches:
        with torch.no_grad():
            branches["keypoint"].head.score_lowres.weight.mul_(1e-3)
    return model
