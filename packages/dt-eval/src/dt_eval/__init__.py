"""dt-eval: evaluators for detection and segmentation, and a fast exact ``COCOeval``.

Importing ``dt_eval`` is cheap: the evaluators load on first access. ``dt_eval.coco`` needs the
base install only (numpy, pycocotools); the evaluators need the ``torch`` extra
(``pip install 'dt-eval[torch]'``) and say so in one line when it is missing.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

from dt_eval._extra import needs_torch_extra

__version__ = importlib.metadata.version("dt-eval")

_LAZY = {
    "COCOeval": "dt_eval.coco",
    "DatasetEvaluator": "dt_eval.evaluator",
    "DatasetEvaluators": "dt_eval.evaluator",
    "inference_on_dataset": "dt_eval.evaluator",
    "print_csv_format": "dt_eval.evaluator",
    "COCOEvaluator": "dt_eval.coco_evaluation",
    "RotatedCOCOEvaluator": "dt_eval.rotated_coco_evaluation",
    "SemSegEvaluator": "dt_eval.sem_seg_evaluation",
    "COCOPanopticEvaluator": "dt_eval.panoptic_evaluation",
    "PascalVOCDetectionEvaluator": "dt_eval.pascal_voc_evaluation",
    "LVISEvaluator": "dt_eval.lvis_evaluation",
    "CityscapesInstanceEvaluator": "dt_eval.cityscapes_evaluation",
    "CityscapesSemSegEvaluator": "dt_eval.cityscapes_evaluation",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dt_eval' has no attribute {name!r}")
    with needs_torch_extra(f"dt_eval.{name}"):
        value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
