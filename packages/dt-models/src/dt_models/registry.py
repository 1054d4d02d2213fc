"""The registries of dt-models' pluggable parts (``dt_config.Registry``; entry-point group
``dt_models.<kind>``, e.g. ``dt_models.backbone``)."""

from __future__ import annotations

from dt_config import Registry, RegistryEntry
from dt_models.config.model import (
    BackboneConfig,
    BoxHeadConfig,
    MaskHeadConfig,
    ModelConfig,
    ProposalGeneratorConfig,
    ROIHeadsConfig,
)

__all__ = [
    "BACKBONE_REGISTRY",
    "META_ARCH_REGISTRY",
    "PROPOSAL_GENERATOR_REGISTRY",
    "ROI_BOX_HEAD_REGISTRY",
    "ROI_HEADS_REGISTRY",
    "ROI_MASK_HEAD_REGISTRY",
    "Registry",
    "RegistryEntry",
]


BACKBONE_REGISTRY = Registry("backbone", BackboneConfig, group="dt_models.backbone")
"""Backbones: ``build(config, input_shape: ShapeSpec) -> Backbone``."""
PROPOSAL_GENERATOR_REGISTRY = Registry(
    "proposal_generator", ProposalGeneratorConfig, group="dt_models.proposal_generator"
)
"""Proposal generators: ``build(config, input_shape: dict[str, ShapeSpec]) -> nn.Module``."""
ROI_HEADS_REGISTRY = Registry("roi_heads", ROIHeadsConfig, group="dt_models.roi_heads")
"""ROI heads: ``build(config, input_shape: dict[str, ShapeSpec]) -> ROIHeads``."""
ROI_BOX_HEAD_REGISTRY = Registry("roi_box_head", BoxHeadConfig, group="dt_models.roi_box_head")
"""Box heads: ``build(config, input_shape: ShapeSpec) -> nn.Module`` with an ``output_shape``."""
ROI_MASK_HEAD_REGISTRY = Registry("roi_mask_head", MaskHeadConfig, group="dt_models.roi_mask_head")
"""Mask heads: ``build(config, input_shape: ShapeSpec, num_classes: int) -> nn.Module``."""
META_ARCH_REGISTRY = Registry(
    "meta_arch", ModelConfig, group="dt_models.meta_arch", default="GeneralizedRCNN"
)
"""Meta-architectures: ``build(config) -> nn.Module``."""
