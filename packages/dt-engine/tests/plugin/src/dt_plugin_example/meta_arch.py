"""``FeatureScaledRCNN``: Generalized R-CNN whose backbone features are multiplied by a learnt scale,
initialised from the config's ``feature_scale``."""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch
from torch import nn

from dt_config import validators as check
from dt_models.build import build_backbone
from dt_models.meta_arch import GeneralizedRCNN
from dt_models.meta_arch.rcnn import GeneralizedRCNNConfig
from dt_models.registry import META_ARCH_REGISTRY, PROPOSAL_GENERATOR_REGISTRY, ROI_HEADS_REGISTRY


@attrs.define(frozen=True, kw_only=True)
class FeatureScaledRCNNConfig(GeneralizedRCNNConfig):
    name: ClassVar[str] = "FeatureScaledRCNN"
    feature_scale: float = attrs.field(default=1.0, validator=check.greater_than(0.0))


class FeatureScaledRCNN(GeneralizedRCNN):
    def __init__(self, *, feature_scale: float, **parts) -> None:
        super().__init__(**parts)
        self.feature_scale = nn.Parameter(torch.tensor(float(feature_scale)))

    def extract_features(self, images):
        return {k: v * self.feature_scale for k, v in super().extract_features(images).items()}


@META_ARCH_REGISTRY.register(FeatureScaledRCNNConfig)
def build_feature_scaled_rcnn(config: FeatureScaledRCNNConfig) -> FeatureScaledRCNN:
    backbone = build_backbone(config.backbone, config.input_shape())
    shapes = backbone.output_shape()
    return FeatureScaledRCNN(
        feature_scale=config.feature_scale,
        backbone=backbone,
        proposal_generator=PROPOSAL_GENERATOR_REGISTRY.build(config.proposal_generator, input_shape=shapes),
        roi_heads=ROI_HEADS_REGISTRY.build(config.roi_heads, input_shape=shapes),
        **config.input_kwargs(),
    )
