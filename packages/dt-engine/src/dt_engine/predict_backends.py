"""``dt predict --backend``: run an exported model (``dt export``'s file and JSON) instead of the torch one.

The runtimes live in dt-export, which sits above dt-engine; it offers them through the entry-point
group ``dt_engine.predict_backend`` (one entry, a ``load(backend, path) -> nn.Module`` function), so
dt-engine imports nothing of it and a missing dt-export is one line naming ``pip install``::

    [project.entry-points."dt_engine.predict_backend"]
    dt_export = "dt_export.predict_backend:load_backend"
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points

from torch import nn

from .errors import InputError

__all__ = ["BACKENDS", "PREDICT_BACKEND_GROUP", "load_predict_backend"]

BACKENDS = ("torch", "onnxruntime", "exported-program", "torchscript")
PREDICT_BACKEND_GROUP = "dt_engine.predict_backend"


def load_predict_backend(backend: str, path: str | os.PathLike[str]) -> nn.Module:
    """The exported model at ``path`` run by ``backend`` (not ``torch``), called like a dt model in eval
    mode (``list[dict]`` in, output dicts at each input's ``height``/``width`` out)."""
    if backend not in BACKENDS:
        raise InputError(f"--backend {backend!r} is unknown; expected one of {', '.join(BACKENDS)}")
    extra = "[onnx]" if backend == "onnxruntime" else ""
    points = list(entry_points(group=PREDICT_BACKEND_GROUP))
    if not points:
        raise InputError(f"--backend {backend} needs dt-export: pip install 'dt-export{extra}'")
    try:
        load = points[0].load()
    except ModuleNotFoundError as err:
        raise InputError(f"--backend {backend} needs {err.name}: pip install 'dt-export{extra}'") from None
    try:
        return load(backend, path)
    except ModuleNotFoundError as err:
        raise InputError(f"--backend {backend} needs {err.name}: pip install 'dt-export{extra}'") from None
    except (OSError, ValueError, RuntimeError) as err:
        raise InputError(f"cannot load {path} for --backend {backend}: {err}") from None
