"""From typed configs to modules: ``build_model`` and ``build_backbone`` dispatch through the registries.

Each part's build function lives next to the part and is registered with its config class
(``dt_models.registry``); nothing here knows the concrete parts.
"""

from __future__ import annotations

import torch
from torch import nn

from dt_config import structure
from dt_models.backbone.backbone import Backbone
from dt_models.layers import ShapeSpec
from dt_models.registry import BACKBONE_REGISTRY, META_ARCH_REGISTRY, BackboneConfig, ModelConfig

__all__ = ["build_backbone", "build_model"]


def build_backbone(config: BackboneConfig, input_shape: ShapeSpec | None = None) -> Backbone:
    """Backbone from its config (any registered backbone config); 3 input channels by default."""
    backbone = BACKBONE_REGISTRY.build(config, input_shape=input_shape or ShapeSpec(channels=3))
    if not isinstance(backbone, Backbone):
        raise TypeError(f"backbone builder for {type(config).name!r} returned {type(backbone).__name__}")
    return backbone


def build_model(config: ModelConfig | dict, device: str | torch.device = "cpu") -> nn.Module:
    """The model described by ``config`` (a ``ModelConfig`` or plain data), on ``device``.

    Raises:
        ConfigError: if ``config`` is plain data that does not describe a valid model.
    """
    if not isinstance(config, ModelConfig):
        config = structure(ModelConfig, config, what="model config")
    return META_ARCH_REGISTRY.build(config).to(device)
