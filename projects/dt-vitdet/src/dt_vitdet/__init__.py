"""ViTDet on dt: the Mask and Cascade R-CNN recipes of "Exploring Plain Vision Transformer Backbones for
Object Detection" (Li et al. 2022) as configs shipped with the package.

The backbone (``ViTSimpleFeaturePyramid``), layer-wise LR decay and the large-scale jitter workflow
(``LSJTrainer``) live in dt-models and dt-engine; this package adds only what the recipes alone need,
registered through entry points.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["get_config_file", "list_configs"]

__version__ = "0.1.0"

_CONFIGS = resources.files(__name__) / "configs"


def list_configs() -> list[str]:
    """Names of the shipped recipes (``COCO/mask_rcnn_vitdet_b_100ep.yaml``, ...), partial bases excluded."""
    root = Path(str(_CONFIGS))
    return sorted(str(p.relative_to(root)) for p in root.glob("*/*.yaml") if p.parent.name != "common")


def get_config_file(name: str) -> str:
    """The path of a shipped recipe, for ``dt train --config`` or a ``_base_`` entry.

    Raises:
        KeyError: if there is no such recipe (the message lists them).
    """
    path = Path(str(_CONFIGS)) / name
    if name not in list_configs():
        raise KeyError(f"no ViTDet config {name!r}; the configs are {list_configs()}")
    return str(path)
