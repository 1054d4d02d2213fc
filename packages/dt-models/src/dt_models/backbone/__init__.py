"""Backbones: the ``Backbone`` base, ResNet/ResNeXt and FPN, RegNet, Swin and MViTv2 (each + FPN), ViT
and the simple feature pyramid, with their configs (importing this package registers them)."""

from dt_models.backbone.backbone import Backbone
from dt_models.backbone.fpn import FPN, LastLevelMaxPool, LastLevelP6P7, ResNetFPNConfig, build_resnet_fpn
from dt_models.backbone.mvit import MViT, MViTConfig, MViTFPNConfig, build_mvit, build_mvit_fpn
from dt_models.backbone.regnet import AnyNet, RegNetConfig, RegNetFPNConfig, build_regnet, build_regnet_fpn
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
from dt_models.backbone.simple_feature_pyramid import (
    SimpleFeaturePyramid,
    ViTSimpleFeaturePyramidConfig,
    build_vit_sfp,
)
from dt_models.backbone.swin import SwinConfig, SwinFPNConfig, SwinTransformer, build_swin, build_swin_fpn
from dt_models.backbone.vit import ViT, ViTConfig, build_vit, convert_timm_vit_state_dict

__all__ = [
    "FPN",
    "AnyNet",
    "Backbone",
    "BasicBlock",
    "BasicStem",
    "BottleneckBlock",
    "DeformBottleneckBlock",
    "LastLevelMaxPool",
    "LastLevelP6P7",
    "MViT",
    "MViTConfig",
    "MViTFPNConfig",
    "RegNetConfig",
    "RegNetFPNConfig",
    "ResNet",
    "ResNetConfig",
    "ResNetFPNConfig",
    "SimpleFeaturePyramid",
    "SwinConfig",
    "SwinFPNConfig",
    "SwinTransformer",
    "ViT",
    "ViTConfig",
    "ViTSimpleFeaturePyramidConfig",
    "build_mvit",
    "build_mvit_fpn",
    "build_regnet",
    "build_regnet_fpn",
    "build_resnet",
    "build_resnet_fpn",
    "build_swin",
    "build_swin_fpn",
    "build_vit",
    "build_vit_sfp",
    "convert_timm_vit_state_dict",
    "make_resnet_stages",
]
