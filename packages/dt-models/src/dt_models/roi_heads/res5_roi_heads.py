"""``Res5ROIHeads``: the C4 heads, where ResNet's res5 stage runs on pooled res4 features and its output
is shared by the box predictor and the mask head (Faster / Mask R-CNN R50-C4); with its config
``Res5ROIHeadsConfig`` (registered as ``Res5ROIHeads``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs
import torch
from torch import nn

from dt_config import validators as check
from dt_models.backbone.resnet_blocks import make_bottleneck_stage
from dt_models.layers import NORM_NAMES, ShapeSpec, cat, shared_channels
from dt_models.poolers import PoolerConfig, ROIPooler, build_pooler
from dt_models.registry import (
    ROI_HEADS_REGISTRY,
    ROI_MASK_HEAD_REGISTRY,
    BoxPredictorConfig,
    MaskHeadConfig,
)
from dt_models.roi_heads.fast_rcnn import FastRCNNOutputLayersConfig
from dt_models.roi_heads.roi_heads import (
    ROIHeads,
    SampledROIHeadsConfig,
    build_box_predictor,
    roi_heads_sampling_kwargs,
    select_foreground_proposals,
)
from dt_structures import Boxes, ImageList, Instances

__all__ = ["Res5HeadConfig", "Res5ROIHeads", "Res5ROIHeadsConfig", "build_res5_roi_heads"]


class Res5ROIHeads(ROIHeads):
    """Pool ``in_features`` (res4), run ``res5`` on the pooled regions; the box predictor reads the
    spatial mean of its output, the optional mask head the output itself.

    Args:
        in_features: the one feature map the pooler reads (res4).
        pooler: pools ``Tensor[R, C4, S, S]`` regions (S = 14 in detectron2's C4 models).
        res5: the res5 stage, ``Tensor[R, C4, S, S]`` -> ``Tensor[R, C5, S/2, S/2]``.
        box_predictor: ``Tensor[R, C5]`` -> (scores, deltas), like ``FastRCNNOutputLayers``.
        mask_head: ``Tensor[R, C5, S/2, S/2]`` and instances to mask losses / ``pred_masks`` (``None``:
            no masks), like ``MaskRCNNConvUpsampleHead``.
        Other arguments as for :class:`ROIHeads`.
    """

    def __init__(
        self,
        *,
        in_features: Sequence[str],
        pooler: ROIPooler,
        res5: nn.Module,
        box_predictor: nn.Module,
        mask_head: nn.Module | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if len(in_features) != 1:
            raise ValueError(f"Res5ROIHeads reads exactly one feature map, got {list(in_features)}")
        self.in_features = list(in_features)
        self.pooler = pooler
        self.res5 = res5
        self.box_predictor = box_predictor
        self.mask_head = mask_head

    def _shared_roi_transform(self, features: dict[str, torch.Tensor], boxes: list[Boxes]) -> torch.Tensor:
        """res5 on the pooled ``boxes``: ``Tensor[R, C5, S/2, S/2]``."""
        x = self.pooler([features[f] for f in self.in_features], boxes)  # [R, C4, S, S]
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)  # faster oneDNN convolutions
        return self.res5(x)

    def forward(
        self,
        images: ImageList,
        features: dict[str, torch.Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        if self.training:
            if targets is None:
                raise ValueError(f"{type(self).__name__} needs targets in training")
            proposals = self.label_and_sample_proposals(proposals, targets)
        box_features = self._shared_roi_transform(features, [p.proposal_boxes for p in proposals])
        predictions = self.box_predictor(box_features.mean(dim=(2, 3)))  # [R, C5] -> scores, deltas
        if not self.training:
            instances, _ = self.box_predictor.inference(predictions, proposals)
            return self.forward_with_given_boxes(features, instances), {}
        losses = self.box_predictor.losses(predictions, proposals)
        if self.mask_head is not None:
            foreground, fg_masks = select_foreground_proposals(proposals, self.num_classes)
            losses.update(self.mask_head(box_features[cat(fg_masks, dim=0)], foreground))
        return proposals, losses

    def forward_with_given_boxes(
        self, features: dict[str, torch.Tensor], instances: list[Instances]
    ) -> list[Instances]:
        """Run the mask head on detections that carry ``pred_boxes`` and ``pred_classes``."""
        if self.training:
            raise RuntimeError("forward_with_given_boxes is for inference; call eval() first")
        if self.mask_head is None:
            return instances
        return self.mask_head(
            self._shared_roi_transform(features, [i.pred_boxes for i in instances]), instances
        )


@attrs.define(frozen=True, kw_only=True)
class Res5HeadConfig:
    """The res5 stage of the C4 heads: 3 bottleneck blocks, the first of stride 2, ``8 * res2_out_channels``
    output channels; the fields mean what they mean in ``ResNetConfig`` (detectron2 reads them from
    ``MODEL.RESNETS``)."""

    num_groups: int = attrs.field(default=1, validator=check.at_least(1))
    width_per_group: int = attrs.field(default=64, validator=check.at_least(1))
    res2_out_channels: int = attrs.field(default=256, validator=check.at_least(1))
    stride_in_1x1: bool = True
    norm: str = attrs.field(default="FrozenBN", validator=check.one_of(NORM_NAMES))


@attrs.define(frozen=True, kw_only=True)
class Res5ROIHeadsConfig(SampledROIHeadsConfig):
    """The C4 ROI heads: a pooler on ``in_features`` (one map, res4), the ``res5`` stage, a box
    predictor on its mean, and a ``mask_head`` on its output (``null``: Faster R-CNN)."""

    name: ClassVar[str] = "Res5ROIHeads"
    in_features: tuple[str, ...] = attrs.field(default=("res4",), validator=check.length(1))
    box_pooler: PoolerConfig = attrs.field(
        factory=lambda: PoolerConfig(resolution=14), validator=check.instance_of(PoolerConfig)
    )
    res5: Res5HeadConfig = attrs.field(factory=Res5HeadConfig, validator=check.instance_of(Res5HeadConfig))
    box_predictor: BoxPredictorConfig = attrs.field(
        factory=FastRCNNOutputLayersConfig, validator=check.instance_of(BoxPredictorConfig)
    )
    mask_head: MaskHeadConfig | None = attrs.field(
        default=None, validator=check.optional(check.instance_of(MaskHeadConfig))
    )

    def gt_fields(self) -> frozenset[str]:
        masks = frozenset() if self.mask_head is None else frozenset({"gt_masks"})
        return super().gt_fields() | masks


@ROI_HEADS_REGISTRY.register(Res5ROIHeadsConfig)
def build_res5_roi_heads(config: Res5ROIHeadsConfig, input_shape: dict[str, ShapeSpec]) -> Res5ROIHeads:
    """Pooler, res5 stage, box predictor and optional mask head of the C4 heads."""
    res5 = config.res5
    out_channels = res5.res2_out_channels * 8
    in_channels = shared_channels(input_shape, config.in_features, "Res5ROIHeads")
    blocks = make_bottleneck_stage(
        3, in_channels, out_channels, first_stride=2,
        bottleneck_channels=res5.num_groups * res5.width_per_group * 8, num_groups=res5.num_groups,
        norm=res5.norm, stride_in_1x1=res5.stride_in_1x1,
    )  # fmt: skip
    side = config.box_pooler.resolution
    mask_head = None
    if config.mask_head is not None:
        mask_head = ROI_MASK_HEAD_REGISTRY.build(
            config.mask_head,
            input_shape=ShapeSpec(channels=out_channels, height=side, width=side),
            num_classes=config.num_classes,
        )
    return Res5ROIHeads(
        in_features=config.in_features,
        pooler=build_pooler(config.box_pooler, config.in_features, input_shape),
        res5=nn.Sequential(*blocks),
        box_predictor=build_box_predictor(
            config.box_predictor,
            config,
            ShapeSpec(channels=out_channels, height=1, width=1),
            config.num_classes,
        ),
        mask_head=mask_head,
        **roi_heads_sampling_kwargs(config),
    )
