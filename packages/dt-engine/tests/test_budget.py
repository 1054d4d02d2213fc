"""Training against a wall-clock budget: the schedule fitted to measured throughput, the console's
time left, and (slow) a budgeted demo whose saved config repeats the run exactly."""

import io
import json

import attrs
import pytest
from engine_tiny_datasets import register_tiny_datasets

from dt_engine.budget import Throughput, fit_max_iter, measure_throughput, scale_schedule
from dt_engine.cli import main
from dt_engine.config.experiment import load_experiment
from dt_engine.cpu import configure_cpu
from dt_engine.defaults import build_workflow
from dt_engine.demo import demo_config_path
from dt_engine.events import EventStorage
from dt_engine.writers import ConsoleWriter


def _demo_config(*overrides):
    with demo_config_path() as path:
        return load_experiment(path, list(overrides))


def test_scale_schedule_scales_steps_and_warmup_with_max_iter():
    cfg = _demo_config("solver.lr_scheduler=multistep", "solver.steps=[600, 800]", "solver.warmup_iters=100")
    scaled = scale_schedule(cfg, 300).solver
    assert (scaled.max_iter, scaled.steps, scaled.warmup_iters) == (300, (200, 267), 33)
    tiny = scale_schedule(cfg, 2).solver
    assert (tiny.max_iter, tiny.steps, tiny.warmup_iters) == (2, (1,), 0)
    assert scale_schedule(cfg, 1).solver.steps == ()
    assert attrs.evolve(scale_schedule(cfg, 900), output_dir=cfg.output_dir) == cfg


def test_fit_max_iter_leaves_room_for_evaluation_and_reserve():
    cfg = _demo_config()
    throughput = Throughput(seconds_per_iter=1.5, seconds_per_test_image=0.1, timed_iterations=6)
    fitted, train_seconds = fit_max_iter(cfg, throughput, 600.0, num_test_images=200, reserve_seconds=30.0)
    assert fitted.solver.max_iter == 366  # (600 - 30 - 20) / 1.5
    assert train_seconds == pytest.approx(549.0)
    with pytest.raises(ValueError, match="cannot hold one training iteration"):
        fit_max_iter(cfg, throughput, 21.0, num_test_images=200)


def test_console_shows_the_budget_left():
    with EventStorage(0) as storage:
        stream = io.StringIO()
        clock = iter([10.0, 10.0])
        writer = ConsoleWriter(
            max_iter=10, stream=stream, interactive=False, clock=lambda: next(clock), deadline=135.0
        )
        storage.put_scalars(total_loss=1.0)
        writer.write()
    assert stream.getvalue().rstrip().endswith("budget left: 2:05")


def test_measure_throughput_times_training_and_test_images():
    register_tiny_datasets()
    cfg = _demo_config(
        "data.datasets.train=[engine_shapes_train4]",
        "data.datasets.test=[engine_shapes_val2]",
        "data.loader.num_workers=0",
        "solver.ims_per_batch=2",
    )
    throughput = measure_throughput(build_workflow(cfg), iterations=2, warmup=1, test_images=2)
    assert throughput.timed_iterations == 2
    assert throughput.seconds_per_iter > 0 and throughput.seconds_per_test_image > 0


def test_demo_rejects_bad_budgets(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path), "--minutes", "0"]) == 2
    assert main(["demo", "--output", str(tmp_path), "--minutes", "5", "--max-iter", "10"]) == 2
    err = capsys.readouterr().err
    assert "--minutes must be > 0, got 0" in err
    assert "give --minutes (a time budget) or --max-iter (a fixed length), not both" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_budgeted_demo_fits_its_budget_and_its_config_repeats_the_run(tmp_path, capsys):
    register_tiny_datasets()
    overrides = [
        "data.datasets.train=[engine_shapes_train4]",
        "data.datasets.test=[engine_shapes_val2]",
        "data.loader.num_workers=0",
        "solver.ims_per_batch=2",
    ]
    out = tmp_path / "demo"
    assert main(["demo", "--output", str(out), "--minutes", "0.75", "--threads", "1", *overrides]) == 0
    printed = capsys.readouterr().out
    cfg = load_experiment(out / "config.yaml")
    assert f"training {cfg.solver.max_iter} iterations to end within 0.75 min" in printed
    assert "of a 0.75 min budget" in printed
    assert cfg.solver.max_iter >= 2 and cfg.solver.warmup_iters < cfg.solver.max_iter

    again = tmp_path / "again"
    with configure_cpu(1):  # the demo's threads: the same reductions give the same numbers
        assert main(["train", "--config", str(out / "config.yaml"), f"output_dir={again}"]) == 0

    def losses(run):
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [(r["iteration"], r["total_loss"]) for r in records if "total_loss" in r]

    assert losses(again) == losses(out) and losses(out)
