"""dt models: layers, backbones, proposal generators, ROI heads and meta-architectures."""

from importlib.metadata import version

from dt_config import ConfigError, structure, unstructure
from dt_models.build import build_model
from dt_models.checkpoint import load_weights
from dt_models.compat.detectron2_config import detectron2_model_config
from dt_models.config import ModelConfig

__version__ = version("dt-models")

__all__ = [
    "ConfigError",
    "ModelConfig",
    "__version__",
    "build_model",
    "detectron2_model_config",
    "load_weights",
    "structure",
    "unstructure",
]
