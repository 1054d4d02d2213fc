"""dt's model zoo: detectron2's baselines by name, with verified, cached, resumable downloads.

* ``list_models(task)``, ``info(name)``: the manifest (``dt_zoo.manifest``) of MODEL_ZOO.md's models,
  with configs, weights URLs and the metrics detectron2 reports;
* ``get_weights(name)``: the weights file, downloaded once into ``$DT_CACHE/zoo`` (default
  ``~/.cache/dt/zoo``) and checked before every use; ``DT_OFFLINE=1`` and ``DT_ZOO_MIRROR`` are
  honoured (``dt_zoo.download``).

Importing ``dt_zoo`` loads neither torch nor model code.
"""

from importlib.metadata import version as _version

from .api import get_weights, info, list_models
from .errors import ZooError
from .manifest import (
    TASKS,
    DatasetRef,
    Manifest,
    Metrics,
    Weights,
    ZooEntry,
    default_manifest,
    dump_manifest,
    load_manifest,
    parse_manifest,
)

__version__ = _version("dt-zoo")

__all__ = [
    "TASKS",
    "DatasetRef",
    "Manifest",
    "Metrics",
    "Weights",
    "ZooEntry",
    "ZooError",
    "__version__",
    "default_manifest",
    "dump_manifest",
    "get_weights",
    "info",
    "list_models",
    "load_manifest",
    "parse_manifest",
]
