"""Shared helpers of the dt-models tests: tiny model configs and synthetic inputs."""

from __future__ import annotations

import attrs
import torch

from dt_models.config import (
    AnchorGeneratorConfig,
    FastRCNNConvFCHeadConfig,
    GeneralizedRCNNConfig,
    MaskBranchConfig,
    MaskRCNNConvUpsampleHeadConfig,
    ResNetConfig,
    ResNetFPNConfig,
    RPNConfig,
    StandardROIHeadsConfig,
)
from dt_structures import Boxes, Instances


def tiny_rcnn_config(mask: bool = True, num_classes: int = 3, **resnet) -> GeneralizedRCNNConfig:
    """A narrow Mask R-CNN R50-FPN that runs in well under a second on CPU."""
    resnet_cfg = ResNetConfig(
        **{"depth": 50, "width_per_group": 4, "stem_out_channels": 8, "res2_out_channels": 16, **resnet}
    )
    return GeneralizedRCNNConfig(
        backbone=ResNetFPNConfig(resnet=resnet_cfg, out_channels=16),
        proposal_generator=RPNConfig(
            anchor_generator=AnchorGeneratorConfig(sizes=((16.0,), (32.0,), (64.0,), (128.0,), (256.0,))),
            pre_nms_topk_train=200,
            post_nms_topk_train=100,
            pre_nms_topk_test=100,
            post_nms_topk_test=50,
            batch_size_per_image=64,
        ),  # fmt: skip
        roi_heads=StandardROIHeadsConfig(
            num_classes=num_classes,
            batch_size_per_image=32,
            score_thresh_test=0.0,
            box_head=FastRCNNConvFCHeadConfig(fc_dim=32),
            branches=tiny_mask_branches() if mask else {},
        ),  # fmt: skip
    )


def tiny_mask_branches() -> dict[str, MaskBranchConfig]:
    return {"mask": MaskBranchConfig(head=MaskRCNNConvUpsampleHeadConfig(conv_dim=8, num_conv=2))}


def with_changes(config, **changes):
    return attrs.evolve(config, **changes)


def square_instances(image_size: tuple[int, int], boxes: list[list[float]], classes: list[int], masks=True):
    """Ground truth: boxes XYXY and their filled rectangles as polygon masks."""
    from dt_structures import PolygonMasks

    inst = Instances(image_size)
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.gt_classes = torch.tensor(classes, dtype=torch.int64)
    if masks:
        inst.gt_masks = PolygonMasks([[[x1, y1, x2, y1, x2, y2, x1, y2]] for x1, y1, x2, y2 in boxes])
    return inst
