"""dt-panoptic-deeplab: Panoptic-DeepLab (Cheng et al. 2020), bottom-up panoptic segmentation, for dt.

Its parts register through entry points (``PanopticDeepLab`` meta-architecture, the
``PanopticDeepLabSemSegHead`` semantic head, the ``PanopticDeepLabTrainer`` workflow); it builds on
dt-deeplab's backbone, ASPP, decoder and loss. Recipes are package data: :func:`config_path`.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import dt_deeplab

__all__ = ["__version__", "config_names", "config_path"]

__version__ = version("dt-panoptic-deeplab")


def config_names() -> list[str]:
    """The recipe files shipped with the package."""
    return dt_deeplab.config_names(__name__)


def config_path(name: str) -> Path:
    """The path of the shipped recipe ``name``; ``KeyError`` naming the recipes if there is none."""
    return dt_deeplab.config_path(name, __name__)
