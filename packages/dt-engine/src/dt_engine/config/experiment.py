"""``ExperimentConfig``: everything a training or evaluation run needs, in one typed, versioned object.

It composes the packages' own configs (``dt_models``' ``ModelConfig``, ``dt_data``'s
``DataConfig``) with the engine's ``SolverConfig`` and ``TestConfig``::

    version: 1
    model: {name: GeneralizedRCNN, ...}     # dt_models.config
    datasets: {my_train: {type: coco, json_file: ..., image_root: ...}}   # dt_engine.config.datasets
    data: {datasets: ..., input: ..., loader: ...}   # dt_data.config
    solver: {base_lr: 0.02, max_iter: 90000, ...}
    test: {eval_period: 0, best_metric: bbox/AP, ...}
    workflow: DefaultTrainer                 # dt_engine.config.workflow
    output_dir: ./output
    seed: -1

Fields that must agree across sections are checked when the config is built, each reported at
the field to change (``$.data.input.format: must equal model.input_format ...``).

Older files keep loading: ``upgrade_data`` applies the registered ``UPGRADES`` (one function
per version step, as detectron2's ``upgrade_config``) before structuring.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import attrs
from attrs import validators as v

from dt_config import ConfigError, ConfigProblem, dump_yaml, load_config, structure
from dt_data.config import DataConfig
from dt_models import ModelConfig

from .datasets import DatasetSourceConfig, resolve_paths
from .model_facts import model_facts
from .solver import SolverConfig, TestConfig
from .workflow import DefaultTrainerConfig, WorkflowConfig

__all__ = [
    "CONFIG_SOURCE_GROUP",
    "CURRENT_VERSION",
    "UPGRADES",
    "ExperimentConfig",
    "dump_config",
    "load_experiment",
    "resolve_config_path",
    "upgrade_data",
]

CURRENT_VERSION = 1

UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}
"""``UPGRADES[k]`` turns the plain data of a version-``k`` config into version ``k + 1``."""


def _default_model() -> ModelConfig:
    return structure(ModelConfig, {})  # the registered default meta-architecture


@attrs.define(frozen=True, kw_only=True)
class ExperimentConfig:
    """A complete experiment. ``seed < 0`` draws a fresh seed per run (recorded in the saved config)."""

    version: int = attrs.field(default=CURRENT_VERSION, validator=v.in_((CURRENT_VERSION,)))
    model: ModelConfig = attrs.Factory(_default_model)
    datasets: dict[str, DatasetSourceConfig] = attrs.Factory(dict)
    """The user's own datasets by name (``dt_engine.config.datasets``), registered by the workflow."""
    data: DataConfig = attrs.Factory(DataConfig)
    solver: SolverConfig = attrs.Factory(SolverConfig)
    test: TestConfig = attrs.Factory(TestConfig)
    workflow: WorkflowConfig = attrs.Factory(DefaultTrainerConfig)
    output_dir: str = "./output"
    seed: int = -1

    def __attrs_post_init__(self) -> None:
        _check_agreement(self)


def _check_agreement(cfg: ExperimentConfig) -> None:
    """Fields of different sections that must agree (the first disagreement is reported)."""
    facts = model_facts(cfg.model)
    fmt = facts.input_format
    if fmt is not None and cfg.data.input.format != fmt.value:
        raise ConfigProblem(
            f"must equal {fmt.key} ({fmt.value!r}: the model's pixel_mean/pixel_std are in that channel "
            f"order), got {cfg.data.input.format!r}",
            key="data.input.format",
        )
    limit = facts.detections_per_image
    if limit is not None and cfg.test.detections_per_image != limit.value:
        raise ConfigProblem(
            f"must equal {limit.key} ({limit.value}), got {cfg.test.detections_per_image}",
            key="test.detections_per_image",
        )
    if not cfg.data.datasets.test:
        for key in ("eval_period", "val_loss_period"):
            if getattr(cfg.test, key) > 0:
                raise ConfigProblem("needs at least one dataset in data.datasets.test", key=f"test.{key}")


def upgrade_data(data: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Bring plain config data from its ``version`` (default: current) to ``CURRENT_VERSION``."""
    version = data.get("version", CURRENT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ConfigError([f"{source}: $.version: expected int, got {type(version).__name__} {version!r}"])
    if version > CURRENT_VERSION:
        raise ConfigError(
            [f"{source}: $.version: {version} is newer than supported ({CURRENT_VERSION}); upgrade dt-engine"]
        )
    if version < 1:
        raise ConfigError([f"{source}: $.version: expected >= 1, got {version}"])
    for step in range(version, CURRENT_VERSION):
        data = UPGRADES[step](data)
        data["version"] = step + 1
    return data


CONFIG_SOURCE_GROUP = "dt_engine.config_source"
"""Entry points naming ``source(name: str) -> str | Path | None``: a config path for a name that is not
a file (dt-zoo maps ``COCO-Detection/faster_rcnn_R_50_FPN_3x`` to its packaged YAML), ``None`` if the
name is not theirs; a source raises ``ConfigError`` for a name it knows but cannot serve."""


PACKAGED_CONFIGS = Path(__file__).resolve().parent.parent / "configs"
"""dt-engine's own configs (``demo.yaml``, ``shapes_retinanet.yaml``, ...), shipped as package data."""


def packaged_config(name: str | os.PathLike[str]) -> Path | None:
    """The packaged config called ``name`` (a bare file name, ``.yaml`` optional), else ``None``."""
    name = os.fspath(name)
    if not name or os.sep in name or "/" in name:
        return None
    path = PACKAGED_CONFIGS / (name if name.endswith(".yaml") else f"{name}.yaml")
    return path if path.is_file() else None


def resolve_config_path(path: str | os.PathLike[str] | None) -> str | os.PathLike[str] | None:
    """``path`` itself when it is ``None`` or an existing file, else the packaged config of that name
    (``packaged_config``), else the first config source's answer (``CONFIG_SOURCE_GROUP``), else
    ``path`` unchanged (so loading reports the missing file)."""
    if path is None or Path(path).is_file():
        return path
    packaged = packaged_config(path)
    if packaged is not None:
        return packaged
    for point in sorted(entry_points(group=CONFIG_SOURCE_GROUP), key=lambda p: p.name):
        found = point.load()(os.fspath(path))
        if found is not None:
            return found
    return path


def load_experiment(path: str | os.PathLike[str] | None, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Load an ``ExperimentConfig`` from YAML (``_base_``, versions) or a ``.py`` file, plus overrides.

    ``path`` may also be a name a config source knows (``resolve_config_path``). Relative paths of
    the ``datasets:`` entries become absolute against the config file's folder (the current folder
    without a file)."""
    path = resolve_config_path(path)
    config = load_config(path, ExperimentConfig, overrides, upgrade=upgrade_data)
    if not config.datasets:
        return config
    base = Path(path).parent if path is not None else Path.cwd()
    return attrs.evolve(config, datasets=resolve_paths(config.datasets, base))


def dump_config(config: ExperimentConfig) -> str:
    """The complete resolved config as YAML (what is saved with every run)."""
    return dump_yaml(config)
