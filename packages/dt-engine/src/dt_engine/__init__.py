"""dt-engine: typed experiment config, hook trainer, checkpointer, DDP launch, writers, the dt command.

The public workflow objects load on first access (``import dt_engine`` stays cheap, so ``dt --help``
does not import the model code):

* ``DefaultTrainer`` (``dt_engine.defaults``): the default training/evaluation workflow to subclass;
* ``Predictor`` (``dt_engine.predictor``): one image in, the model's outputs out;
* ``WORKFLOW_REGISTRY``/``WorkflowConfig`` (``dt_engine.config.workflow``): the ``workflow`` field;
* ``EVALUATOR_REGISTRY`` (``dt_engine.evaluation``): evaluators per dataset ``evaluator_type``;
* ``ExperimentConfig``/``load_experiment`` (``dt_engine.config.experiment``).
"""

from __future__ import annotations

import importlib
from importlib.metadata import version
from typing import Any

__version__ = version("dt-engine")

_LAZY = {
    "DefaultTrainer": "dt_engine.defaults",
    "TrainingParts": "dt_engine.defaults",
    "build_workflow": "dt_engine.defaults",
    "Predictor": "dt_engine.predictor",
    "WORKFLOW_REGISTRY": "dt_engine.config.workflow",
    "WorkflowConfig": "dt_engine.config.workflow",
    "EVALUATOR_REGISTRY": "dt_engine.evaluation",
    "ExperimentConfig": "dt_engine.config.experiment",
    "load_experiment": "dt_engine.config.experiment",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dt_engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
