"""WarmupPolyLR: detectron2's WarmupPolyLR values, as a plugged-in dt-engine LR schedule."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml

import dt_deeplab
from dt_config import ConfigError
from dt_deeplab.lr_scheduler import WarmupPolyLRConfig, WarmupPolyParamScheduler
from dt_engine.build import build_lr_scheduler
from dt_engine.config.experiment import load_experiment
from dt_engine.lr_scheduler import LRMultiplier

SHAPES_RECIPE = dt_deeplab.config_path("deeplab_v3_plus_shapes_cpu.yaml")


def _lrs(scheduler_of, max_iter, base_lr=0.01):
    """The LR of each of ``max_iter`` iterations of the scheduler ``scheduler_of(optimizer)``."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    scheduler = scheduler_of(optimizer)
    lrs = []
    for _ in range(max_iter):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def _multiplier_lrs(schedule, max_iter, base_lr=0.01):
    return _lrs(lambda opt: LRMultiplier(opt, multiplier=schedule, max_iter=max_iter), max_iter, base_lr)


def _recipe_lrs(*overrides):
    solver = load_experiment(SHAPES_RECIPE, ["solver.base_lr=1.0", *overrides]).solver
    return _lrs(lambda opt: build_lr_scheduler(opt, solver), solver.max_iter, base_lr=1.0)


def test_poly_values_with_linear_warmup():
    lrs = _multiplier_lrs(
        WarmupPolyParamScheduler(max_iter=100, power=0.9, warmup_factor=0.1, warmup_iters=10), 100
    )
    assert lrs[0] == pytest.approx(0.01 * 0.1)  # warmup start, (1 - 0)^0.9 = 1
    alpha = 5 / 10
    assert lrs[5] == pytest.approx(0.01 * (0.1 * (1 - alpha) + alpha) * (1 - 5 / 100) ** 0.9)
    assert lrs[10] == pytest.approx(0.01 * 0.9**0.9)
    assert lrs[50] == pytest.approx(0.01 * 0.5**0.9)
    assert lrs[99] == pytest.approx(0.01 * 0.01**0.9)
    assert all(b < a for a, b in zip(lrs[10:], lrs[11:], strict=False))


def test_constant_warmup_and_constant_ending():
    schedule = WarmupPolyParamScheduler(
        max_iter=100,
        power=1.0,
        warmup_factor=0.5,
        warmup_iters=4,
        warmup_method="constant",
        constant_ending=0.2,
    )
    lrs = _multiplier_lrs(schedule, 100, base_lr=1.0)
    assert lrs[:4] == pytest.approx([0.5 * (1 - i / 100) for i in range(4)])
    assert lrs[50] == pytest.approx(0.5)
    assert lrs[80] == pytest.approx(0.2)  # (1 - 0.8) = 0.2 is not below 0.2
    assert lrs[81:] == pytest.approx([0.2] * 19)  # the poly term fell below the ending


def test_the_config_builds_warmup_then_poly_then_the_constant_ending():
    lrs = _recipe_lrs(
        "solver.max_iter=100",
        "solver.warmup_iters=10",
        "solver.warmup_factor=0.1",
        "solver.lr_scheduler={name: WarmupPolyLR, power: 2.0, constant_ending: 0.09}",
    )
    assert lrs[0] == pytest.approx(0.1)  # warmup_factor * (1 - 0)^2
    assert lrs[5] == pytest.approx(0.55 * 0.95**2)  # (0.1 * 0.5 + 0.5) * (1 - 0.05)^2 = 0.4964
    assert lrs[10] == pytest.approx(0.81)  # warmup over: 0.9^2
    assert lrs[50] == pytest.approx(0.25)
    assert lrs[69] == pytest.approx(0.0961)  # 0.31^2, still above the ending
    assert lrs[70] == pytest.approx(0.09)  # 0.3^2 = 0.09 is not below it
    assert lrs[71:] == pytest.approx([0.09] * 29)  # 0.29^2 = 0.0841 < 0.09: held at the ending


def test_the_constant_ending_waits_for_the_warmup_to_end():
    # detectron2 applies the ending only once the warmup factor is 1.
    lrs = _recipe_lrs(
        "solver.max_iter=10",
        "solver.warmup_iters=9",
        "solver.warmup_factor=0.1",
        "solver.lr_scheduler={name: WarmupPolyLR, power: 1.0, constant_ending: 0.5}",
    )
    assert lrs[8] == pytest.approx((0.1 / 9 + 8 / 9) * 0.2)  # in warmup: 0.18, below the ending
    assert lrs[9] == pytest.approx(0.5)  # warmup over, 0.1 < 0.5


def test_the_recipe_defaults_are_detectron2s():
    assert load_experiment(SHAPES_RECIPE).solver.lr_scheduler == WarmupPolyLRConfig(
        power=0.9, constant_ending=0.0
    )


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ("solver.lr_scheduler.constant_endng=0.1", r"\$\.solver\.lr_scheduler\.constant_endng: unknown key "
         r"\(did you mean 'constant_ending'\?\)"),
        ("solver.lr_scheduler.power=0", r"\$\.solver\.lr_scheduler\.power: must be > 0\.0, got 0"),
        ("solver.lr_scheduler.constant_ending=1.5", r"\$\.solver\.lr_scheduler\.constant_ending: must be in"),
        ("solver.lr_scheduler={name: WarmupPolyLr}", r"\$\.solver\.lr_scheduler\.name: unknown lr_scheduler "
         r"'WarmupPolyLr' \(did you mean 'WarmupPolyLR'\?\)"),
    ],
)  # fmt: skip
def test_a_bad_scheduler_field_is_reported_at_its_path(override, problem):
    with pytest.raises(ConfigError, match=problem):
        load_experiment(SHAPES_RECIPE, [override])


def test_bad_arguments():
    with pytest.raises(ValueError, match="warmup_method"):
        WarmupPolyParamScheduler(max_iter=10, warmup_method="cosine")
    with pytest.raises(ValueError, match="max_iter"):
        WarmupPolyParamScheduler(max_iter=0)


def test_a_fresh_process_finds_the_schedule_through_its_entry_point():
    """Nothing imports dt_deeplab.lr_scheduler: dt-engine's registry loads it from the entry point."""
    script = textwrap.dedent(
        f"""
        import sys
        from dt_engine.config.experiment import load_experiment
        assert "dt_deeplab.lr_scheduler" not in sys.modules
        cfg = load_experiment({str(SHAPES_RECIPE)!r})
        print(type(cfg.solver.lr_scheduler).__module__, type(cfg.solver.lr_scheduler).__name__)
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["dt_deeplab.lr_scheduler", "WarmupPolyLRConfig"]


@pytest.mark.slow
def test_dt_train_runs_the_poly_schedule(tmp_path):
    """A 6-iteration ``dt train`` of the shapes recipe logs the poly LR and saves its options."""
    config = tmp_path / "shapes_poly.py"
    config.write_text(
        textwrap.dedent(
            f"""
            import dt_deeplab
            from dt_data.datasets import register_shapes
            from dt_engine.config.experiment import load_experiment

            register_shapes("poly", num_train=8, num_val=2, image_size=64, root={str(tmp_path / "data")!r})
            config = load_experiment(
                dt_deeplab.config_path("deeplab_v3_plus_shapes_cpu.yaml"),
                ["data.datasets.train=[poly_train_sem_seg]", "data.datasets.test=[poly_val_sem_seg]"],
            )
            """
        )
    )
    out = tmp_path / "out"
    argv = [
        "train", "--config", str(config), f"output_dir={out}", "solver.max_iter=6", "solver.warmup_iters=2",
        "solver.base_lr=0.002", "solver.ims_per_batch=2", "data.input.min_size_train=[64]",
        "data.input.crop.size=[64, 64]", "model.sem_seg_head.train_size=[64, 64]",
        "solver.lr_scheduler={name: WarmupPolyLR, power: 2.0, constant_ending: 0.05}",
    ]  # fmt: skip
    dt = [sys.executable, "-c", "import sys; from dt_engine.cli import main; sys.exit(main(sys.argv[1:]))"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([*dt, *argv], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    last = next(r for r in reversed(records) if "lr" in r)
    # iteration 5 of 6: (1 - 5/6)^2 = 0.028 < 0.05, so the LR is held at 0.05 * base_lr
    assert (last["iteration"], last["lr"]) == (5, pytest.approx(0.002 * 0.05))
    saved = yaml.safe_load((out / "config.yaml").read_text())["solver"]["lr_scheduler"]
    assert saved == {"name": "WarmupPolyLR", "power": 2.0, "constant_ending": 0.05}
