"""The typed model configuration, gathered from where each part defines it.

``ModelConfig`` is the tagged-union base of model configs (``name`` picks the meta-architecture,
default ``GeneralizedRCNN``); every other class here is the config of one built-in part, defined and
registered in the module that implements the part. Defaults are those of detectron2's
``Base-RCNN-FPN.yaml`` (Faster R-CNN, ResNet-50-FPN, 80 classes).
"""

from dt_models.anchor_generator import AnchorGeneratorConfig
from dt_models.backbone import (
    MViTConfig,
    MViTFPNConfig,
    RegNetConfig,
    RegNetFPNConfig,
    ResNetConfig,
    ResNetFPNConfig,
    SwinConfig,
    SwinFPNConfig,
    ViTConfig,
    ViTSimpleFeaturePyramidConfig,
)
from dt_models.meta_arch import GeneralizedRCNNConfig, ImageModelConfig, ProposalNetworkConfig
from dt_models.poolers import PoolerConfig
from dt_models.proposal_generator import PrecomputedProposalsConfig, RPNConfig
from dt_models.registry import (
    CURRENT_VERSION,
    BackboneConfig,
    BoxHeadConfig,
    BoxPredictorConfig,
    MaskHeadConfig,
    ModelConfig,
    ProposalGeneratorConfig,
    ROIBranchConfig,
    ROIHeadsConfig,
)
from dt_models.roi_heads import (
    CascadeROIHeadsConfig,
    FastRCNNConvFCHeadConfig,
    FastRCNNOutputLayersConfig,
    KeypointBranchConfig,
    KRCNNConvDeconvUpsampleHeadConfig,
    MaskBranchConfig,
    MaskRCNNConvUpsampleHeadConfig,
    Res5HeadConfig,
    Res5ROIHeadsConfig,
    StandardROIHeadsConfig,
)

__all__ = [
    "CURRENT_VERSION",
    "AnchorGeneratorConfig",
    "BackboneConfig",
    "BoxHeadConfig",
    "BoxPredictorConfig",
    "CascadeROIHeadsConfig",
    "FastRCNNConvFCHeadConfig",
    "FastRCNNOutputLayersConfig",
    "GeneralizedRCNNConfig",
    "ImageModelConfig",
    "KRCNNConvDeconvUpsampleHeadConfig",
    "KeypointBranchConfig",
    "MaskBranchConfig",
    "MaskHeadConfig",
    "MViTConfig",
    "MViTFPNConfig",
    "MaskRCNNConvUpsampleHeadConfig",
    "ModelConfig",
    "PoolerConfig",
    "PrecomputedProposalsConfig",
    "ProposalGeneratorConfig",
    "ProposalNetworkConfig",
    "ROIBranchConfig",
    "ROIHeadsConfig",
    "RPNConfig",
    "RegNetConfig",
    "RegNetFPNConfig",
    "Res5HeadConfig",
    "Res5ROIHeadsConfig",
    "ResNetConfig",
    "ResNetFPNConfig",
    "StandardROIHeadsConfig",
    "SwinConfig",
    "SwinFPNConfig",
    "ViTConfig",
    "ViTSimpleFeaturePyramidConfig",
]
