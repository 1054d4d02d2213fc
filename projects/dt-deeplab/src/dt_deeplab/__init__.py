"""dt-deeplab: DeepLabV3 and DeepLabV3+ semantic segmentation (Chen et al. 2017, 2018) for dt.

Its parts register into dt's registries through entry points (``DeepLabResNet`` backbone,
``DeepLabSegmentor`` meta-architecture, ``DeepLabTrainer`` workflow, ``WarmupPolyLR`` LR schedule, the
``DeepLabV3Head`` and ``DeepLabV3PlusHead`` semantic heads); importing this package loads nothing else.
Recipes are package data: :func:`config_path`.
"""

from __future__ import annotations

from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

__all__ = ["__version__", "config_names", "config_path"]

__version__ = version("dt-deeplab")


def config_names(package: str = __name__) -> list[str]:
    """The recipe files shipped in ``package``'s ``configs/`` (``deeplab_v3_plus_shapes_cpu.yaml``, ...)."""
    return sorted(p.name for p in files(package).joinpath("configs").iterdir() if p.name.endswith(".yaml"))


def config_path(name: str, package: str = __name__) -> Path:
    """The path of the recipe ``name`` shipped in ``package`` (for ``dt train --config``); ``KeyError``
    naming the recipes if there is none."""
    names = config_names(package)
    if name not in names:
        raise KeyError(f"{package} has no config {name!r}; it has {', '.join(names)}")
    return Path(str(files(package).joinpath("configs", name)))
