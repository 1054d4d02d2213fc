"""dt-eval: evaluators for detection and segmentation, and a fast exact ``COCOeval``.

Importing ``dt_eval`` is cheap: the evaluators (which may use torch) load on first access.
``dt_eval.coco`` needs numpy only.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

__version__ = importlib.metadata.version("dt-eval")

_LAZY = {
    "COCOeval": "dt_eval.coco",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dt_eval' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
