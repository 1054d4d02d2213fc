"""Meta-architectures of the R-CNN family: ``GeneralizedRCNN`` and the RPN-only ``ProposalNetwork``,
with their configs (registered as ``GeneralizedRCNN`` and ``ProposalNetwork``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
from torch import nn

from dt_config import validators as check
from dt_models.backbone import Backbone
from dt_models.build import build_backbone
from dt_models.meta_arch.image_model import ImageModel, ImageModelConfig
from dt_models.meta_arch.postprocessing import detector_postprocess
from dt_models.proposal_generator import RPNConfig
from dt_models.proposal_generator.precomputed import proposals_from_inputs
from dt_models.registry import (
    META_ARCH_REGISTRY,
    PROPOSAL_GENERATOR_REGISTRY,
    ROI_HEADS_REGISTRY,
    ClassCount,
    ProposalGeneratorConfig,
    ROIHeadsConfig,
)
from dt_models.roi_heads import StandardROIHeadsConfig
from dt_structures import Instances

__all__ = [
    "GeneralizedRCNN",
    "GeneralizedRCNNConfig",
    "ProposalNetwork",
    "ProposalNetworkConfig",
    "build_generalized_rcnn",
    "build_proposal_network",
]


class GeneralizedRCNN(ImageModel):
    """Backbone, proposal generator and ROI heads (Faster / Mask R-CNN).

    ``forward(batched_inputs)`` takes a list of dicts with ``image`` (``Tensor[C, H, W]``, in
    ``input_format``), optional ``height``/``width`` (the output resolution) and, in training,
    ``instances`` (``gt_boxes``, ``gt_classes``, ``gt_masks``). It returns a dict of losses in
    training and ``[{"instances": Instances}]`` in eval mode.

    Args:
        backbone: feature extractor; its ``size_divisibility`` decides the padding.
        proposal_generator: ``(images, features, gt_instances) -> (proposals, losses)``; ``None``
            (``PrecomputedProposals``): each input's ``proposals`` are used.
        roi_heads: ``(images, features, proposals, gt_instances) -> (instances, losses)``.
        pixel_mean, pixel_std, input_format: as for :class:`ImageModel`.
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        proposal_generator: nn.Module | None,
        roi_heads: nn.Module,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        input_format: str = "BGR",
    ) -> None:
        super().__init__(
            backbone=backbone, pixel_mean=pixel_mean, pixel_std=pixel_std, input_format=input_format
        )
        self.proposal_generator = proposal_generator
        self.roi_heads = roi_heads

    def forward(self, batched_inputs: Sequence[dict[str, Any]]):
        if not self.training:
            return self.inference(batched_inputs)
        images = self.preprocess_image(batched_inputs)
        gt_instances = self.gt_instances(batched_inputs)
        features = self.extract_features(images)
        proposals, proposal_losses = self._proposals(batched_inputs, images, features, gt_instances)
        _, detector_losses = self.roi_heads(images, features, proposals, gt_instances)
        return {**detector_losses, **proposal_losses}

    def _proposals(self, batched_inputs, images, features, gt_instances):
        if self.proposal_generator is None:  # precomputed, made by the data mapper
            return proposals_from_inputs(batched_inputs, self.device), {}
        return self.proposal_generator(images, features, gt_instances)

    def inference(
        self,
        batched_inputs: Sequence[dict[str, Any]],
        detected_instances: list[Instances] | None = None,
        do_postprocess: bool = True,
    ) -> list[dict[str, Instances]] | list[Instances]:
        """Detections per image; with ``detected_instances`` (boxes and classes), only the extra ROI
        branches (masks, ...) run.

        With ``do_postprocess=False`` the raw ``Instances`` at the network input size are returned.
        """
        if self.training:
            raise RuntimeError("inference needs eval mode; call model.eval() first")
        images = self.preprocess_image(batched_inputs)
        features = self.extract_features(images)
        if detected_instances is None:
            proposals, _ = self._proposals(batched_inputs, images, features, None)
            results, _ = self.roi_heads(images, features, proposals, None)
        else:
            results = self.roi_heads.forward_with_given_boxes(
                features, [x.to(self.device) for x in detected_instances]
            )
        if not do_postprocess:
            return results
        return [
            {"instances": detector_postprocess(r, x.get("height", size[0]), x.get("width", size[1]))}
            for r, x, size in zip(results, batched_inputs, images.image_sizes, strict=True)
        ]


class ProposalNetwork(ImageModel):
    """Backbone and proposal generator only; eval mode returns ``[{"proposals": Instances}]``.

    Args as for :class:`GeneralizedRCNN`, without ``roi_heads``.
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        proposal_generator: nn.Module,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        input_format: str = "BGR",
    ) -> None:
        super().__init__(
            backbone=backbone, pixel_mean=pixel_mean, pixel_std=pixel_std, input_format=input_format
        )
        self.proposal_generator = proposal_generator

    def forward(self, batched_inputs: Sequence[dict[str, Any]]):
        images = self.preprocess_image(batched_inputs)
        features = self.extract_features(images)
        gt_instances = self.gt_instances(batched_inputs) if self.training else None
        proposals, losses = self.proposal_generator(images, features, gt_instances)
        if self.training:
            return losses
        return [
            {"proposals": detector_postprocess(p, x.get("height", size[0]), x.get("width", size[1]))}
            for p, x, size in zip(proposals, batched_inputs, images.image_sizes, strict=True)
        ]


@attrs.define(frozen=True, kw_only=True)
class GeneralizedRCNNConfig(ImageModelConfig):
    """Faster / Mask R-CNN: backbone, proposal generator, ROI heads, input normalization."""

    name: ClassVar[str] = "GeneralizedRCNN"
    proposal_generator: ProposalGeneratorConfig = attrs.field(
        factory=RPNConfig, validator=check.instance_of(ProposalGeneratorConfig)
    )
    roi_heads: ROIHeadsConfig = attrs.field(
        factory=StandardROIHeadsConfig, validator=check.instance_of(ROIHeadsConfig)
    )

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.check_input_features(self.proposal_generator, "proposal_generator")
        self.check_input_features(self.roi_heads, "roi_heads")

    def gt_fields(self) -> frozenset[str]:
        return self.roi_heads.gt_fields() | {"gt_boxes"}

    def class_counts(self) -> tuple[ClassCount, ...]:
        return (
            ClassCount(kind="thing", num_classes=self.roi_heads.num_classes, key="roi_heads.num_classes"),
        )


@attrs.define(frozen=True, kw_only=True)
class ProposalNetworkConfig(ImageModelConfig):
    """RPN-only model: backbone and proposal generator."""

    name: ClassVar[str] = "ProposalNetwork"
    proposal_generator: ProposalGeneratorConfig = attrs.field(
        factory=RPNConfig, validator=check.instance_of(ProposalGeneratorConfig)
    )

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.check_input_features(self.proposal_generator, "proposal_generator")

    def gt_fields(self) -> frozenset[str]:
        return frozenset({"gt_boxes"})


@META_ARCH_REGISTRY.register(GeneralizedRCNNConfig)
def build_generalized_rcnn(config: GeneralizedRCNNConfig) -> GeneralizedRCNN:
    """Faster / Mask R-CNN."""
    backbone = build_backbone(config.backbone, config.input_shape())
    shapes = backbone.output_shape()
    return GeneralizedRCNN(
        backbone=backbone,
        proposal_generator=PROPOSAL_GENERATOR_REGISTRY.build(config.proposal_generator, input_shape=shapes),
        roi_heads=ROI_HEADS_REGISTRY.build(config.roi_heads, input_shape=shapes),
        **config.input_kwargs(),
    )


@META_ARCH_REGISTRY.register(ProposalNetworkConfig)
def build_proposal_network(config: ProposalNetworkConfig) -> ProposalNetwork:
    """RPN-only model."""
    backbone = build_backbone(config.backbone, config.input_shape())
    proposal_generator = PROPOSAL_GENERATOR_REGISTRY.build(
        config.proposal_generator, input_shape=backbone.output_shape()
    )
    return ProposalNetwork(backbone=backbone, proposal_generator=proposal_generator, **config.input_kwargs())
