"""Backbones: the ``Backbone`` base, ResNet/ResNeXt and FPN."""

from dt_models.backbone.backbone import Backbone
from dt_models.backbone.fpn import FPN, LastLevelMaxPool, LastLevelP6P7
from dt_models.backbone.resnet import (
    BasicBlock,
    BasicStem,
    BottleneckBlock,
    DeformBottleneckBlock,
    ResNet,
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
    "make_resnet_stages",
]
