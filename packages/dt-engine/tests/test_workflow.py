"""The workflow object: a project's ``DefaultTrainer`` subclass picked by the ``workflow`` field, and
the best checkpoint chosen on ``test.best_metric``."""

import json
from pathlib import Path
from typing import ClassVar

import attrs
import pytest
import torch
from engine_tiny_datasets import register_tiny_datasets

from dt_config import ConfigError
from dt_config import validators as check
from dt_engine import WORKFLOW_REGISTRY, DefaultTrainer, WorkflowConfig
from dt_engine.checkpoint import Checkpointer
from dt_engine.cli import main
from dt_engine.config.experiment import dump_config, load_experiment
from dt_engine.defaults import best_metric_key, build_workflow
from dt_engine.train_loop import HookBase

CONFIG = str(Path(__file__).parent / "engine_tiny_rcnn.yaml")
CALLS: list[tuple[str, object]] = []


@attrs.define(frozen=True, kw_only=True)
class RecordingTrainerConfig(WorkflowConfig):
    name: ClassVar[str] = "EngineRecordingTrainer"
    marker: str = attrs.field(default="default", validator=check.one_of(("default", "custom")))


class _RecordIterations(HookBase):
    def after_step(self) -> None:
        CALLS.append(("step", self.state.iter))


@WORKFLOW_REGISTRY.register(RecordingTrainerConfig)
class RecordingTrainer(DefaultTrainer):
    """Records its builder calls and adds a hook: what a project's subclass would do."""

    def build_evaluator(self, dataset_name, output_dir=None):
        CALLS.append(("evaluator", (dataset_name, self.cfg.workflow.marker)))
        return super().build_evaluator(dataset_name, output_dir)

    def build_hooks(self, parts):
        return [*super().build_hooks(parts), _RecordIterations()]


@pytest.fixture
def tiny(tmp_path):
    register_tiny_datasets()
    CALLS.clear()
    return tmp_path / "out"


def _overrides(out):
    return [
        f"output_dir={out}",
        "solver.max_iter=2",
        "test.val_loss_period=0",
        "test.precise_bn.enabled=false",
    ]


def test_dt_train_and_eval_use_the_registered_subclass(tiny, capsys):
    argv = [
        "train",
        "--config",
        CONFIG,
        "workflow={name: EngineRecordingTrainer, marker: custom}",
        *_overrides(tiny),
    ]
    assert main(argv) == 0
    assert ("step", 0) in CALLS and ("step", 1) in CALLS
    assert ("evaluator", ("engine_shapes_val2", "custom")) in CALLS
    saved = load_experiment(tiny / "config.yaml")
    assert isinstance(saved.workflow, RecordingTrainerConfig) and saved.workflow.marker == "custom"
    assert type(build_workflow(saved)) is RecordingTrainer
    CALLS.clear()
    capsys.readouterr()
    argv = ["eval", "--config", str(tiny / "config.yaml"), "--weights", str(tiny / "model_final.pth")]
    assert main(argv) == 0
    assert CALLS == [("evaluator", ("engine_shapes_val2", "custom"))]
    assert "bbox" in json.loads(capsys.readouterr().out)


def test_workflow_field_name_shorthand_round_trip_and_typos():
    cfg = load_experiment(CONFIG, ["workflow=EngineRecordingTrainer"])
    assert cfg.workflow == RecordingTrainerConfig()
    assert "workflow:\n  name: EngineRecordingTrainer\n  marker: default\n" in dump_config(cfg)
    assert type(build_workflow(load_experiment(CONFIG))) is DefaultTrainer
    with pytest.raises(ConfigError) as err:
        load_experiment(CONFIG, ["workflow=DefaultTrainr"])
    (problem,) = err.value.problems
    prefix = (
        "$.workflow.name: unknown workflow 'DefaultTrainr' (did you mean 'DefaultTrainer'?); registered: "
    )
    assert problem.startswith(prefix)
    registered = problem.removeprefix(prefix).split(", ")  # installed projects may add workflows
    assert {"DefaultTrainer", "EngineRecordingTrainer"} <= set(registered) and registered == sorted(
        registered
    )
    with pytest.raises(ConfigError) as err:
        load_experiment(CONFIG, ["workflow.name=EngineRecordingTrainer", "workflow.markr=custom"])
    assert err.value.problems[0].startswith("$.workflow.markr: unknown key (did you mean 'marker'?)")
    with pytest.raises(ConfigError) as err:
        load_experiment(CONFIG, ["workflow={name: EngineRecordingTrainer, marker: other}"])
    assert err.value.problems[0].startswith("$.workflow.marker: must be one of ['default', 'custom']")


def test_model_best_is_chosen_on_best_metric_across_a_resume(tiny):
    overrides = [*_overrides(tiny), "test.eval_period=1", "test.best_metric=segm/AP"]
    assert main(["train", "--config", CONFIG, *overrides]) == 0
    assert main(["train", "--config", CONFIG, *overrides, "solver.max_iter=4", "--resume"]) == 0
    lines = [json.loads(line) for line in (tiny / "metrics.jsonl").read_text().splitlines()]
    segm = [(d["segm/AP"], d["iteration"]) for d in lines if "segm/AP" in d]
    assert [it for _, it in segm] == [0, 1, 2, 3]
    best_value = max(v for v, _ in segm)
    best_iter = next(it for v, it in segm if v == best_value)  # the first of equal values is kept
    best = Checkpointer.read(tiny / "model_best.pth")
    assert best["iteration"] == best_iter
    state = Checkpointer.read(tiny / "model_final.pth")["trainer"]["hooks"]["BestCheckpointer"]
    assert state == {"best_metric": pytest.approx(best_value), "best_iter": best_iter}
    model = best["model"]
    assert model.keys() and all(isinstance(v, torch.Tensor) for v in model.values())


@pytest.mark.parametrize(
    ("tests", "metric", "key"),
    [
        ("[a]", "segm/AP", "segm/AP"),
        ("[a, b]", "segm/AP", "a/segm/AP"),
        ("[a, b]", "b/sem_seg/mIoU", "b/sem_seg/mIoU"),
        ("[a, b]", "null", None),
    ],
)
def test_best_metric_names_with_several_test_datasets(tests, metric, key):
    cfg = load_experiment(CONFIG, [f"data.datasets.test={tests}", f"test.best_metric={metric}"])
    assert best_metric_key(cfg) == key
