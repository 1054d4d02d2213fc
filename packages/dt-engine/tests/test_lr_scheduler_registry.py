"""``solver.lr_scheduler`` is a pluggable part: built-in schedules by their bare name, a plug-in schedule
with its own validated fields, found through the ``dt_engine.lr_scheduler`` entry-point group."""

import os
import subprocess
import sys

import pytest
import yaml

from dt_config import ConfigError, dump_yaml, load_config, structure, unstructure
from dt_engine.config.solver import SolverConfig
from dt_engine.lr_scheduler import LR_SCHEDULER_REGISTRY, CosineLRConfig, MultiStepLRConfig


def _solver(**data):
    return structure(SolverConfig, data, path="$.solver")


def test_built_in_schedules_are_registered_in_the_entry_point_group():
    assert LR_SCHEDULER_REGISTRY.group == "dt_engine.lr_scheduler"
    assert {"multistep", "cosine"} <= set(LR_SCHEDULER_REGISTRY.names())
    assert SolverConfig().lr_scheduler == MultiStepLRConfig()


@pytest.mark.parametrize("spelling", ["cosine", {"name": "cosine"}])
def test_a_schedule_is_named_by_its_bare_name_or_a_mapping(spelling):
    assert _solver(lr_scheduler=spelling, steps=[]).lr_scheduler == CosineLRConfig()


def test_a_schedule_without_options_is_written_as_its_bare_name():
    solver = SolverConfig(lr_scheduler="cosine", steps=())  # Python configs may name it too
    assert isinstance(solver.lr_scheduler, CosineLRConfig)
    assert unstructure(solver)["lr_scheduler"] == "cosine"  # as every existing YAML spells it
    assert load_config(None, SolverConfig, ["lr_scheduler=cosine", "steps=[]"]) == solver


def test_an_unknown_schedule_is_reported_at_its_path_with_a_suggestion():
    with pytest.raises(ConfigError) as err:
        _solver(lr_scheduler="cosin")
    assert err.value.problems == [
        "$.solver.lr_scheduler: unknown lr_scheduler 'cosin' (did you mean 'cosine'?); "
        f"registered: {', '.join(LR_SCHEDULER_REGISTRY.names())}"
    ]
    with pytest.raises(ValueError, match="unknown lr_scheduler 'cosin'"):
        SolverConfig(lr_scheduler="cosin")


def test_steps_must_lie_within_training_only_for_multistep():
    with pytest.raises(ConfigError, match=r"\$\.solver\.steps: must lie in \(0, max_iter=100\], got \[150\]"):
        _solver(max_iter=100, steps=[150])
    assert _solver(max_iter=100, steps=[150], lr_scheduler="cosine").steps == (150,)


PLUGIN = '''
"""A schedule from outside dt-engine: linear decay from 1 to ``end`` behind the solver's warmup."""
from typing import ClassVar

import attrs

from dt_config import validators as check
from dt_engine.lr_scheduler import LR_SCHEDULER_REGISTRY, LinearParamScheduler, LRSchedulerConfig, with_warmup


@attrs.define(frozen=True, kw_only=True)
class LinearDecayLRConfig(LRSchedulerConfig):
    name: ClassVar[str] = "LinearDecay"
    end: float = attrs.field(default=0.0, validator=check.between(0.0, 1.0))


@LR_SCHEDULER_REGISTRY.register(LinearDecayLRConfig)
def build_linear_decay(config, solver):
    return with_warmup(LinearParamScheduler(1.0, config.end), solver)
'''

PROBE = """
import json, sys
import torch
from dt_config import ConfigError, dump_yaml, load_config
from dt_engine.build import build_lr_scheduler
from dt_engine.config.solver import SolverConfig

assert "lr_plugin_demo" not in sys.modules
solver = load_config(None, SolverConfig, sys.argv[1:])
optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=solver.base_lr)
scheduler = build_lr_scheduler(optimizer, solver)
lrs = []
for _ in range(solver.max_iter):
    lrs.append(optimizer.param_groups[0]["lr"])
    optimizer.step()
    scheduler.step()
try:
    load_config(None, SolverConfig, [*sys.argv[1:], "lr_scheduler.ned=0.1"])
    problems = []
except ConfigError as err:
    problems = err.problems
print(json.dumps({"lrs": lrs, "yaml": dump_yaml(solver), "problems": problems}))
"""


def test_a_plug_in_schedule_comes_in_through_its_entry_point(tmp_path):
    """A distribution on the path declares ``LinearDecay`` in ``dt_engine.lr_scheduler``; a fresh process
    loads it on first use of the name, builds it with its own field and validates that field."""
    (tmp_path / "lr_plugin_demo.py").write_text(PLUGIN)
    dist_info = tmp_path / "lr_plugin_demo-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: lr-plugin-demo\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[dt_engine.lr_scheduler]\nLinearDecay = lr_plugin_demo\n")
    overrides = [
        "lr_scheduler={name: LinearDecay, end: 0.5}", "base_lr=1.0", "max_iter=10", "steps=[]",
        "warmup_iters=2", "warmup_factor=0.1",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", PROBE, *overrides], capture_output=True, text=True, env=env, timeout=300
    )
    assert run.returncode == 0, run.stderr
    out = yaml.safe_load(run.stdout)
    # warmup from 0.1 * 1 to the decay's value at 2/10, 0.8 + 0.5 * 0.2 = 0.9; then 1 - 0.5 * i / 10
    assert out["lrs"] == pytest.approx([0.1, 0.5, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55])
    assert out["problems"] == [
        "$.lr_scheduler.ned: unknown key (did you mean 'end'?); allowed: end"
    ]  # fmt: skip
    assert "lr_scheduler:\n  name: LinearDecay\n  end: 0.5\n" in out["yaml"]


def test_a_resolved_solver_round_trips(tmp_path):
    solver = _solver(lr_scheduler="cosine", steps=[], base_lr_end=0.001)
    text = dump_yaml(solver)
    assert "lr_scheduler: cosine\n" in text
    (tmp_path / "solver.yaml").write_text(text)
    reloaded = load_config(tmp_path / "solver.yaml", SolverConfig)
    assert reloaded == solver and dump_yaml(reloaded) == text
