"""Meta-architectures: whole models taking ``list[dict]`` inputs, on the public ``ImageModel`` base,
with their configs (importing this package registers them)."""

from dt_models.meta_arch.dense_detector import DenseDetector, DenseDetectorConfig
from dt_models.meta_arch.fcos import FCOS, FCOSConfig, build_fcos
from dt_models.meta_arch.image_model import ImageModel, ImageModelConfig
from dt_models.meta_arch.panoptic_fpn import PanopticFPN, PanopticFPNConfig, build_panoptic_fpn
from dt_models.meta_arch.postprocessing import detector_postprocess
from dt_models.meta_arch.rcnn import (
    GeneralizedRCNN,
    GeneralizedRCNNConfig,
    ProposalNetwork,
    ProposalNetworkConfig,
    build_generalized_rcnn,
    build_proposal_network,
)
from dt_models.meta_arch.retinanet import RetinaNet, RetinaNetConfig, build_retinanet
from dt_models.meta_arch.semantic_seg import (
    SemanticSegmentor,
    SemanticSegmentorConfig,
    build_semantic_segmentor,
    sem_seg_postprocess,
)

__all__ = [
    "DenseDetector",
    "DenseDetectorConfig",
    "FCOS",
    "FCOSConfig",
    "GeneralizedRCNN",
    "GeneralizedRCNNConfig",
    "ImageModel",
    "ImageModelConfig",
    "PanopticFPN",
    "PanopticFPNConfig",
    "ProposalNetwork",
    "ProposalNetworkConfig",
    "RetinaNet",
    "RetinaNetConfig",
    "SemanticSegmentor",
    "SemanticSegmentorConfig",
    "build_fcos",
    "build_generalized_rcnn",
    "build_panoptic_fpn",
    "build_proposal_network",
    "build_retinanet",
    "build_semantic_segmentor",
    "detector_postprocess",
    "sem_seg_postprocess",
]
