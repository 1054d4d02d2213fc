"""Meta-architectures: whole models taking ``list[dict]`` inputs, on the public ``ImageModel`` base,
with their configs (importing this package registers them)."""

from dt_models.meta_arch.image_model import ImageModel, ImageModelConfig
from dt_models.meta_arch.postprocessing import detector_postprocess
from dt_models.meta_arch.rcnn import (
    GeneralizedRCNN,
    GeneralizedRCNNConfig,
    ProposalNetwork,
    ProposalNetworkConfig,
    build_generalized_rcnn,
    build_proposal_network,
)

__all__ = [
    "GeneralizedRCNN",
    "GeneralizedRCNNConfig",
    "ImageModel",
    "ImageModelConfig",
    "ProposalNetwork",
    "ProposalNetworkConfig",
    "build_generalized_rcnn",
    "build_proposal_network",
    "detector_postprocess",
]
