"""``DensePoseBranch``: the DensePose R-CNN ROI branch (registered in ``ROI_BRANCH_REGISTRY``).

An optional decoder fuses the FPN maps into one stride-4 map; a pooler crops the boxes; a
``DensePoseV1ConvXHead`` or ``DensePoseDeepLabHead`` and the chart predictor give
:class:`DensePoseChartOutput` maps. Training keeps foreground proposals whose IoU with their ground
truth exceeds ``fg_iou_threshold`` and that carry ``gt_densepose``, and returns the chart losses;
inference sets ``pred_densepose`` (a ``DensePoseChartOutput`` per detection) on the detections::

    roi_heads:
      num_classes: 1
      branches:
        densepose: {name: DensePoseBranch, head: DensePoseV1ConvXHead}

Named ``densepose``, its modules load detectron2's ``roi_heads.densepose_head.*``,
``roi_heads.densepose_predictor.*`` and (with the decoder) ``roi_heads.decoder.*`` weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs
import torch
from torch import nn

from dt_config import validators as check
from dt_models.layers import NORM_NAMES, ShapeSpec, nonzero_tuple, shared_channels
from dt_models.poolers import PoolerConfig, ROIPooler, build_pooler
from dt_models.registry import ROI_BRANCH_REGISTRY, ROIBranchConfig
from dt_models.roi_heads import ROIBranch
from dt_structures import Boxes, Instances, matched_pairwise_iou

from .heads import DensePoseDecoder, DensePoseDeepLabHead, DensePoseV1ConvXHead
from .losses import densepose_chart_losses
from .predictor import UV_CONFIDENCES, DensePoseChartPredictor

__all__ = ["DensePoseBranch", "DensePoseBranchConfig", "DensePoseDecoderConfig", "build_densepose_branch"]

HEADS = ("DensePoseV1ConvXHead", "DensePoseDeepLabHead")


@attrs.define(frozen=True, kw_only=True)
class DensePoseDecoderConfig:
    """The FPN decoder run before pooling (detectron2's ``DECODER_*`` options)."""

    conv_dim: int = attrs.field(default=256, validator=check.at_least(1))
    num_classes: int = attrs.field(default=256, validator=check.at_least(1))
    norm: str = attrs.field(default="", validator=check.one_of(NORM_NAMES))
    common_stride: int = attrs.field(default=4, validator=check.at_least(1))


@attrs.define(frozen=True, kw_only=True)
class DensePoseBranchConfig(ROIBranchConfig):
    """DensePose R-CNN's branch; defaults are detectron2's ``ROI_DENSEPOSE_HEAD`` defaults.

    ``decoder: null`` pools the FPN maps directly (the ``_legacy`` recipes). ``uv_confidence``
    ``iid_iso``/``indep_aniso`` and ``segm_confidence`` select the confidence-estimation variants
    (the ``WC1``/``WC2``, ``M`` recipes).
    """

    name: ClassVar[str] = "DensePoseBranch"
    pooler: PoolerConfig = attrs.field(
        factory=lambda: PoolerConfig(type="ROIAlignV2", resolution=28, sampling_ratio=2),
        validator=check.instance_of(PoolerConfig),
    )
    decoder: DensePoseDecoderConfig | None = attrs.field(factory=DensePoseDecoderConfig)
    head: str = attrs.field(default="DensePoseV1ConvXHead", validator=check.one_of(HEADS))
    num_convs: int = attrs.field(default=8, validator=check.at_least(0))
    conv_dim: int = attrs.field(default=512, validator=check.at_least(1))
    conv_kernel: int = attrs.field(default=3, validator=check.one_of((1, 3, 5, 7)))
    deeplab_norm: str = attrs.field(default="GN", validator=check.one_of(("GN", "")))
    num_parts: int = attrs.field(default=24, validator=check.at_least(1))
    num_coarse_segm_channels: int = attrs.field(default=2, validator=check.at_least(2))
    deconv_kernel: int = attrs.field(default=4, validator=check.one_of((2, 4, 6, 8)))
    up_scale: int = attrs.field(default=2, validator=check.at_least(1))
    uv_confidence: str = attrs.field(default="none", validator=check.one_of(UV_CONFIDENCES))
    segm_confidence: bool = False
    confidence_epsilon: float = attrs.field(default=0.01, validator=check.greater_than(0.0))
    fg_iou_threshold: float = attrs.field(default=0.7, validator=check.between(0.0, 1.0))
    index_weight: float = attrs.field(default=5.0, validator=check.at_least(0.0))
    part_weight: float = attrs.field(default=1.0, validator=check.at_least(0.0))
    point_regression_weight: float = attrs.field(default=0.01, validator=check.at_least(0.0))

    def gt_fields(self) -> frozenset[str]:
        return frozenset({"gt_densepose"})


class DensePoseBranch(ROIBranch):
    """Decoder (optional), pooler, head, predictor; losses in training, ``pred_densepose`` at inference.

    Args:
        in_features, pooler: as for ``ROIBranch`` (with a decoder, ``pooler`` has one level).
        decoder: ``DensePoseDecoder`` or None; head, predictor: the DensePose head and predictor.
        fg_iou_threshold: training boxes need IoU with their ground truth above this.
        loss_options: keyword arguments of :func:`densepose_chart_losses` (weights, ``uv_confidence``).
    """

    detectron2_roi_heads_parts: ClassVar[tuple[str, ...]] = ("decoder",)
    """Parts detectron2 keeps directly under its ROI heads (``roi_heads.decoder.*``)."""

    def __init__(
        self,
        *,
        in_features: Sequence[str],
        pooler: ROIPooler,
        decoder: DensePoseDecoder | None,
        head: nn.Module,
        predictor: DensePoseChartPredictor,
        fg_iou_threshold: float,
        loss_options: dict,
    ) -> None:
        super().__init__(in_features=in_features, pooler=pooler)
        self.decoder = decoder
        self.head = head
        self.predictor = predictor
        self.fg_iou_threshold = fg_iou_threshold
        self.loss_options = dict(loss_options)

    def select_training_instances(self, foreground: list[Instances]) -> list[Instances]:
        """Per image, the proposals with IoU > ``fg_iou_threshold`` and a DensePose annotation."""
        selected = []
        for props in foreground:
            if len(props) == 0 or not props.has("gt_densepose"):
                selected.append(props[:0])
                continue
            iou = matched_pairwise_iou(props.gt_boxes, props.proposal_boxes)
            annotated = torch.tensor(
                [d is not None for d in props.gt_densepose], dtype=torch.bool, device=iou.device
            )
            selected.append(props[nonzero_tuple((iou > self.fg_iou_threshold) & annotated)[0]])
        return selected

    def pool(self, features: dict[str, torch.Tensor], boxes: Sequence[Boxes]) -> torch.Tensor:
        maps = [features[f] for f in self.in_features]
        if self.decoder is not None:
            maps = [self.decoder(maps)]
        return self.pooler(maps, boxes)

    def forward(
        self, pooled: torch.Tensor, instances: list[Instances]
    ) -> dict[str, torch.Tensor] | list[Instances]:
        outputs = self.predictor(self.head(pooled))
        if self.training:
            return densepose_chart_losses(outputs, instances, **self.loss_options)
        start = 0
        for inst in instances:
            inst.pred_densepose = outputs[start : start + len(inst)]
            start += len(inst)
        return instances


@ROI_BRANCH_REGISTRY.register(DensePoseBranchConfig)
def build_densepose_branch(
    config: DensePoseBranchConfig,
    input_shape: dict[str, ShapeSpec],
    in_features: tuple[str, ...],
    num_classes: int,
) -> DensePoseBranch:
    """The DensePose branch over ``in_features`` of ``input_shape`` (``num_classes`` is not used:
    DensePose predicts one chart model for every detected class)."""
    channels = shared_channels(input_shape, in_features, "DensePoseBranch")
    decoder = None
    pooled_features = in_features
    if config.decoder is not None:
        d = config.decoder
        decoder = DensePoseDecoder(
            in_features=in_features, in_channels=[input_shape[f].channels for f in in_features],
            in_strides=[input_shape[f].stride for f in in_features], conv_dim=d.conv_dim,
            num_classes=d.num_classes, norm=d.norm, common_stride=d.common_stride,
        )  # fmt: skip
        channels, pooled_features = d.num_classes, in_features[:1]
    head_options = dict(in_channels=channels, num_convs=config.num_convs, conv_dim=config.conv_dim,
                        kernel_size=config.conv_kernel)  # fmt: skip
    if config.head == "DensePoseDeepLabHead":
        head = DensePoseDeepLabHead(**head_options, norm=config.deeplab_norm)
    else:
        head = DensePoseV1ConvXHead(**head_options)
    predictor = DensePoseChartPredictor(
        in_channels=head.out_channels, num_parts=config.num_parts,
        num_coarse_segm_channels=config.num_coarse_segm_channels, deconv_kernel=config.deconv_kernel,
        up_scale=config.up_scale, uv_confidence=config.uv_confidence, segm_confidence=config.segm_confidence,
        epsilon=config.confidence_epsilon,
    )  # fmt: skip
    return DensePoseBranch(
        in_features=in_features,
        pooler=build_pooler(config.pooler, pooled_features, input_shape),
        decoder=decoder,
        head=head,
        predictor=predictor,
        fg_iou_threshold=config.fg_iou_threshold,
        loss_options=dict(
            part_weight=config.part_weight, index_weight=config.index_weight,
            point_regression_weight=config.point_regression_weight, uv_confidence=config.uv_confidence,
            sigma_lower_bound=config.confidence_epsilon,
        ),
    )  # fmt: skip
