"""The ``workflow`` field of an experiment: which workflow class ``dt train`` / ``dt eval`` run.

``WORKFLOW_REGISTRY`` maps a name to a config class (deriving ``WorkflowConfig``, holding the
workflow's own options, if any) and a build function ``build(cfg: ExperimentConfig)`` returning a
``DefaultTrainer`` (or subclass). A subclass registers itself as its build function::

    @attrs.define(frozen=True, kw_only=True)
    class MyTrainerConfig(WorkflowConfig):
        name: ClassVar[str] = "MyTrainer"
        freeze_iters: int = 0                  # options, validated like any config field

    @WORKFLOW_REGISTRY.register(MyTrainerConfig)
    class MyTrainer(DefaultTrainer):
        def build_evaluator(self, dataset_name, output_dir=None): ...

Then ``workflow: MyTrainer`` (or ``workflow: {name: MyTrainer, freeze_iters: 100}``) selects it.
Packages plug workflows in through the entry-point group ``dt_engine.workflow`` (the module named
by the entry point is imported the first time an unknown name is asked for).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from dt_config import Registry, Tagged, converter

if TYPE_CHECKING:
    from ..defaults import DefaultTrainer
    from .experiment import ExperimentConfig

__all__ = ["WORKFLOW_REGISTRY", "DefaultTrainerConfig", "WorkflowConfig"]


@attrs.define(frozen=True, kw_only=True)
class WorkflowConfig(Tagged):
    """Base of workflow configs: ``name`` picks the registered workflow (default ``DefaultTrainer``)."""


WORKFLOW_REGISTRY = Registry("workflow", WorkflowConfig, group="dt_engine.workflow", default="DefaultTrainer")
"""Workflows: ``build(cfg: ExperimentConfig) -> DefaultTrainer``."""

_structure_tagged = converter.get_structure_hook(WorkflowConfig)


def _structure_workflow(data: Any, cls: type) -> WorkflowConfig:
    """``workflow: MyTrainer`` is short for ``workflow: {name: MyTrainer}``."""
    return _structure_tagged({"name": data} if isinstance(data, str) else data, cls)


converter.register_structure_hook_func(lambda t: t is WorkflowConfig, _structure_workflow)


@attrs.define(frozen=True, kw_only=True)
class DefaultTrainerConfig(WorkflowConfig):
    """The default workflow (no options)."""

    name: ClassVar[str] = "DefaultTrainer"


@WORKFLOW_REGISTRY.register(DefaultTrainerConfig)
def build_default_trainer(cfg: ExperimentConfig) -> DefaultTrainer:
    """``DefaultTrainer(cfg)``; the engine is imported when a run starts, not when a config loads."""
    from ..defaults import DefaultTrainer

    return DefaultTrainer(cfg)
