"""Compatibility with detectron2: its YAML configs (checkpoints: :mod:`dt_models.checkpoint`)."""

from dt_models.compat.detectron2_config import detectron2_model_config, load_detectron2_yaml

__all__ = ["detectron2_model_config", "load_detectron2_yaml"]
