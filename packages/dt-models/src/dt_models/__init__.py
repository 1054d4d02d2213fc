"""dt models: layers, backbones, proposal generators, ROI heads and meta-architectures.

Importing ``dt_models`` imports its part packages, which registers every built-in part.
"""

from importlib.metadata import version

from dt_config import ConfigError, structure, unstructure
from dt_models import backbone, meta_arch, proposal_generator, roi_heads
from dt_models.build import build_backbone, build_model
from dt_models.checkpoint import load_weights
from dt_models.compat.detectron2_config import detectron2_model_config
from dt_models.config import ModelConfig
from dt_models.meta_arch import ImageModel

__version__ = version("dt-models")

__all__ = [
    "ConfigError",
    "ImageModel",
    "ModelConfig",
    "__version__",
    "backbone",
    "build_backbone",
    "build_model",
    "detectron2_model_config",
    "load_weights",
    "meta_arch",
    "proposal_generator",
    "roi_heads",
    "structure",
    "unstructure",
]
