"""Meta-architectures: whole models taking ``list[dict]`` inputs."""

from dt_models.meta_arch.postprocessing import detector_postprocess
from dt_models.meta_arch.rcnn import GeneralizedRCNN, ProposalNetwork

__all__ = ["GeneralizedRCNN", "ProposalNetwork", "detector_postprocess"]
