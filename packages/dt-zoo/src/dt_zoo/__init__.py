"""dt's model zoo: detectron2's baselines by name, with verified, cached, resumable downloads.

* ``list_models(task)``, ``info(name)``: the manifest (``dt_zoo.manifest``) of MODEL_ZOO.md's models,
  with configs, weights URLs and the metrics detectron2 reports;
* ``get_config(name)``, ``get(name, trained=True)``: dt's ``ExperimentConfig`` of a model (packaged
  under ``dt_zoo/configs``, ``dt_zoo.zoo_configs``) and the built model with its weights;
* ``get_weights(name)``: the weights file, downloaded once into ``$DT_CACHE/zoo`` (default
  ``~/.cache/dt/zoo``) and checked before every use; ``DT_OFFLINE=1`` and ``DT_ZOO_MIRROR`` are
  honoured (``dt_zoo.download``).

Importing ``dt_zoo`` loads neither torch nor model code (``get_config`` and ``get`` do, when called).
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
from .models import get, get_config

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
    "get",
    "get_config",
    "get_weights",
    "info",
    "list_models",
    "load_manifest",
    "parse_manifest",
]
