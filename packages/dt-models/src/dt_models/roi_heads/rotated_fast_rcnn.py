"""Rotated Fast R-CNN: ``RROIHeads`` (box-only ROI heads over ``(cx, cy, w, h, angle)`` proposals) and
its box predictor ``RotatedFastRCNNOutputLayers``, with their configs (registered as ``RROIHeads`` and
``RotatedFastRCNNOutputLayers``). Proposals come from ``RRPN``; ground truth is ``RotatedBoxes``."""

from __future__ import annotations

from typing import ClassVar

import attrs

from dt_config import ConfigProblem
from dt_config import validators as check
from dt_models.box_regression_rotated import Box2BoxTransformRotated
from dt_models.layers import ShapeSpec
from dt_models.poolers import PoolerConfig
from dt_models.registry import ROI_BOX_PREDICTOR_REGISTRY, ROI_HEADS_REGISTRY
from dt_models.roi_heads.fast_rcnn import (
    FastRCNNOutputLayers,
    FastRCNNOutputLayersConfig,
    output_layers_kwargs,
)
from dt_models.roi_heads.roi_heads import (
    StandardROIHeads,
    StandardROIHeadsConfig,
    box_branch_kwargs,
    roi_heads_sampling_kwargs,
)
from dt_structures import pairwise_iou_rotated

__all__ = [
    "RROIHeads",
    "RROIHeadsConfig",
    "RotatedFastRCNNOutputLayers",
    "RotatedFastRCNNOutputLayersConfig",
    "RotatedPoolerConfig",
    "build_rroi_heads",
    "build_rotated_fast_rcnn_output_layers",
]


class RotatedFastRCNNOutputLayers(FastRCNNOutputLayers):
    """:class:`FastRCNNOutputLayers` with a ``Box2BoxTransformRotated``: ``K * 5`` (or 5) deltas per
    box, and detections clipped (nearly horizontal boxes only), suppressed by rotated NMS and returned
    as ``RotatedBoxes`` ``pred_boxes`` (``Tensor[N, 5]``)."""

    rotated: ClassVar[bool] = True

    def __init__(self, *, box2box_transform: Box2BoxTransformRotated, **kwargs) -> None:
        if not isinstance(box2box_transform, Box2BoxTransformRotated):
            raise TypeError(f"expected a Box2BoxTransformRotated, got {type(box2box_transform).__name__}")
        super().__init__(box2box_transform=box2box_transform, **kwargs)


class RROIHeads(StandardROIHeads):
    """Rotated Fast R-CNN ROI heads (detectron2's ``RROIHeads``): proposals are matched to ground truth
    by rotated IoU, pooled with ``ROIAlignRotated``, and scored and regressed by a
    :class:`RotatedFastRCNNOutputLayers`. Boxes only: no extra branches (masks, keypoints).

    Args as for :class:`StandardROIHeads` without ``branches``; proposals and ``gt_boxes`` are
    ``RotatedBoxes``.
    """

    match_quality = staticmethod(pairwise_iou_rotated)

    def __init__(self, **kwargs) -> None:
        if kwargs.get("branches"):
            raise ValueError("RROIHeads predicts boxes only: it takes no branches (masks, keypoints)")
        super().__init__(**kwargs)
        kind = self.box_pooler.level_poolers[0].kind
        if kind != "ROIAlignRotated":
            raise ValueError(f"RROIHeads needs an ROIAlignRotated box pooler, got {kind}")
        if not isinstance(self.box_predictor, RotatedFastRCNNOutputLayers):
            raise TypeError(
                f"RROIHeads needs a RotatedFastRCNNOutputLayers box predictor, "
                f"got {type(self.box_predictor).__name__}"
            )


@attrs.define(frozen=True, kw_only=True)
class RotatedPoolerConfig(PoolerConfig):
    """``ROIPooler`` of rotated boxes: ``type`` is ``ROIAlignRotated``."""

    type: str = attrs.field(default="ROIAlignRotated", validator=check.one_of(("ROIAlignRotated",)))


@attrs.define(frozen=True, kw_only=True)
class RotatedFastRCNNOutputLayersConfig(FastRCNNOutputLayersConfig):
    """Rotated box predictor: five box coding weights ``(wx, wy, ww, wh, wa)`` and the smooth-L1 box
    loss (the IoU losses are defined for axis-aligned boxes only)."""

    name: ClassVar[str] = "RotatedFastRCNNOutputLayers"
    bbox_reg_weights: tuple[float, ...] = attrs.field(
        default=(10.0, 10.0, 5.0, 5.0, 1.0), validator=check.length(5)
    )
    bbox_reg_loss_type: str = attrs.field(default="smooth_l1", validator=check.one_of(("smooth_l1",)))


@attrs.define(frozen=True, kw_only=True)
class RROIHeadsConfig(StandardROIHeadsConfig):
    """Rotated Fast R-CNN heads: ``StandardROIHeadsConfig`` with a rotated box pooler and predictor and
    no branches. Pair it with the ``RRPN`` proposal generator."""

    name: ClassVar[str] = "RROIHeads"
    box_pooler: RotatedPoolerConfig = attrs.field(
        factory=RotatedPoolerConfig, validator=check.instance_of(RotatedPoolerConfig)
    )
    box_predictor: RotatedFastRCNNOutputLayersConfig = attrs.field(
        factory=RotatedFastRCNNOutputLayersConfig,
        validator=check.instance_of(RotatedFastRCNNOutputLayersConfig),
    )

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if self.branches:
            raise ConfigProblem("RROIHeads predicts boxes only: must be empty", key="branches")


@ROI_BOX_PREDICTOR_REGISTRY.register(RotatedFastRCNNOutputLayersConfig)
def build_rotated_fast_rcnn_output_layers(
    config: RotatedFastRCNNOutputLayersConfig,
    input_shape: ShapeSpec,
    num_classes: int,
    test_score_thresh: float,
    test_nms_thresh: float,
    test_topk_per_image: int,
) -> RotatedFastRCNNOutputLayers:
    """``RotatedFastRCNNOutputLayers`` on box features of ``input_shape``."""
    transform = Box2BoxTransformRotated(config.bbox_reg_weights)
    return RotatedFastRCNNOutputLayers(
        **output_layers_kwargs(config, transform, input_shape, num_classes),
        test_score_thresh=test_score_thresh,
        test_nms_thresh=test_nms_thresh,
        test_topk_per_image=test_topk_per_image,
    )


@ROI_HEADS_REGISTRY.register(RROIHeadsConfig)
def build_rroi_heads(config: RROIHeadsConfig, input_shape: dict[str, ShapeSpec]) -> RROIHeads:
    """Rotated box pooler, box head and rotated box predictor."""
    return RROIHeads(**box_branch_kwargs(config, input_shape), **roi_heads_sampling_kwargs(config))
