"""Backbones: the ``Backbone`` base, ResNet/ResNeXt and FPN, with their configs (importing this
package registers them)."""

from dt_models.backbone.backbone import Backbone
from dt_models.backbone.fpn import FPN, LastLevelMaxPool, LastLevelP6P7, ResNetFPNConfig, build_resnet_fpn
from dt_models.backbone.resnet import (
    BasicBlock,
    BasicStem,
    BottleneckBlock,
    DeformBottleneckBlock,
    ResNet,
    ResNetConfig,
    build_resnet,
    make_resnet_stages,
)

__all__ = [
    "FPN",
    "Backbone",
    "BasicBlock",
    "BasicStem",
    "BottleneckBlock",
    "DeformBottleneckBlock",
    "LastLevelMaxPool",
    "LastLevelP6P7",
    "ResNet",
    "ResNetConfig",
    "ResNetFPNConfig",
    "build_resnet",
    "build_resnet_fpn",
    "make_resnet_stages",
]
