"""dt-densepose: DensePose R-CNN (chart-based dense human pose) as a dt project package.

It plugs into dt through entry points only: the ``DensePoseBranch`` ROI branch
(``dt_models.roi_branch``), the ``DensePoseTrainer`` workflow (``dt_engine.workflow``; it also
registers the synthetic ``densepose_shapes_*`` datasets) and the ``densepose`` evaluator type
(``dt_engine.evaluator``: GPS / GPSm AP) and the ``densepose`` prediction output
(``dt_engine.prediction_output``: ``dt predict`` draws and records DensePose, :mod:`.visualize`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .cache import MissingDataFileError, densepose_cache_dir
from .iuv import chart_to_box_iuv, chart_to_image_iuv
from .predictor import DensePoseChartOutput
from .structures import DensePoseAnnotationError, DensePoseDataRelative
from .symmetry import ChartSymmetry, human_chart_symmetry, mirror_chart_symmetry

__all__ = [
    "ChartSymmetry",
    "DensePoseAnnotationError",
    "DensePoseChartOutput",
    "DensePoseDataRelative",
    "MissingDataFileError",
    "chart_to_box_iuv",
    "chart_to_image_iuv",
    "config_path",
    "densepose_cache_dir",
    "human_chart_symmetry",
    "mirror_chart_symmetry",
]

__version__ = "0.1.0"


def config_path(name: str) -> Path:
    """The path of a recipe shipped with the package (``densepose_shapes_cpu.yaml``, ...)."""
    path = Path(str(resources.files("dt_densepose") / "configs" / name))
    if not path.is_file():
        known = sorted(p.name for p in path.parent.glob("*.yaml"))
        raise FileNotFoundError(f"no dt-densepose config {name!r}; shipped: {', '.join(known)}")
    return path
