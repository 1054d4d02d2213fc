"""``dt demo``: the packaged config, its helpers, and (slow) a shortened demo end to end."""

import json
import struct
from pathlib import Path

import pytest
import torch
from engine_tiny_datasets import register_tiny_datasets
from matplotlib.image import imread

from dt_engine.checkpoint import Checkpointer
from dt_engine.cli import main
from dt_engine.config.experiment import dump_config, load_experiment
from dt_engine.config.model_facts import model_facts
from dt_engine.demo import configure_cpu, demo_config_path, final_results, plot_curves

PNG = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG header."""
    data = path.read_bytes()
    assert data[:8] == PNG
    return struct.unpack(">II", data[16:24])


def _png_is_not_blank(path: Path) -> bool:
    pixels = imread(path)  # float [H, W, C] in [0, 1]
    return pixels.ndim == 3 and float(pixels.std()) > 0.01


def test_demo_config_loads_and_round_trips(tmp_path):
    with demo_config_path() as path:
        cfg = load_experiment(path)
    assert cfg.data.datasets.train == ("shapes_train",) and cfg.data.datasets.test == ("shapes_val",)
    facts = model_facts(cfg.model)
    assert facts.num_classes.value == 5 and facts.mask_on
    saved = tmp_path / "config.yaml"
    saved.write_text(dump_config(cfg))
    assert load_experiment(saved) == cfg
    assert dump_config(load_experiment(saved)) == saved.read_text()


def test_dt_train_accepts_the_demo_config_and_validates_it(tmp_path, capsys):
    with demo_config_path() as path:
        with pytest.raises(SystemExit) as help_exit:
            main(["train", "--config", str(path), "--help"])
        assert help_exit.value.code == 0
        assert main(["train", "--config", str(path), "solver.base_lrr=0.1", f"output_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "dt train: error:" in err and "base_lrr" in err and "base_lr" in err
    assert not (tmp_path / "config.yaml").exists()


def test_demo_rejects_bad_arguments(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path), "--max-iter", "0"]) == 2
    assert main(["demo", "--output", str(tmp_path), "--threads", "0"]) == 2
    assert main(["demo", "--output", str(tmp_path), "data.datasets.test=[no_such_set]"]) == 2
    err = capsys.readouterr().err
    assert "--max-iter must be >= 1" in err and "--threads must be >= 1" in err
    assert "unknown dataset 'no_such_set'" in err
    assert list(tmp_path.iterdir()) == []


def test_configure_cpu_is_restored():
    threads = torch.get_num_threads()
    with configure_cpu(1) as used:
        assert used == 1 and torch.get_num_threads() == 1
        assert torch.tensor([1e-40]).mul(1.0).item() == 0.0
    assert torch.get_num_threads() == threads
    assert torch.tensor([1e-40]).mul(1.0).item() != 0.0
    with pytest.raises(ValueError, match="num_threads"), configure_cpu(0):
        pass


def _write_metrics(path: Path) -> None:
    lines = [
        {"iteration": 19, "total_loss": 2.0, "loss_cls": 1.0, "lr": 0.001},
        {"iteration": 39, "total_loss": 1.0, "loss_cls": 0.5, "lr": 0.0005, "bbox/AP": 10.0, "segm/AP": 8.0},
        {"iteration": 59, "total_loss": 0.5, "loss_cls": 0.2, "lr": 0.0001},
        {"iteration": 59, "bbox/AP": 55.5, "bbox/AP50": 80.0, "segm/AP": 51.25},
    ]
    path.write_text("".join(json.dumps(d) + "\n" for d in lines) + '{"iteration": 6')  # truncated tail


def test_final_results_are_the_last_evaluation(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    _write_metrics(metrics)
    assert final_results(metrics) == {"bbox": {"AP": 55.5, "AP50": 80.0}, "segm": {"AP": 51.25}}
    metrics.write_text('{"iteration": 1, "total_loss": 1.0}\n')
    with pytest.raises(ValueError, match="no bbox/segm evaluation"):
        final_results(metrics)


def test_plot_curves_draws_three_panels(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    _write_metrics(metrics)
    png = plot_curves(metrics, tmp_path / "curves.png")
    assert _png_size(png) == (1500, 450)
    assert _png_is_not_blank(png)


@pytest.mark.slow
def test_shortened_demo_writes_every_output(tmp_path, capsys):
    register_tiny_datasets()
    out = tmp_path / "demo"
    overrides = [
        "data.datasets.train=[engine_shapes_train4]",
        "data.datasets.test=[engine_shapes_val2]",
        "data.loader.num_workers=0",
        "solver.ims_per_batch=2",
        "test.eval_period=2",
    ]
    threads = torch.get_num_threads()
    assert main(["demo", "--output", str(out), "--max-iter", "4", "--threads", "1", *overrides]) == 0
    assert torch.get_num_threads() == threads  # the process's settings are restored
    assert torch.tensor([1e-40]).mul(1.0).item() != 0.0  # denormals are not flushed any more
    summary = capsys.readouterr().out

    cfg = load_experiment(out / "config.yaml")
    assert cfg.solver.max_iter == 4 and cfg.output_dir == str(out)
    assert dump_config(cfg) == (out / "config.yaml").read_text()

    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(isinstance(d["iteration"], int) for d in lines)
    assert {"total_loss", "loss_cls", "loss_mask", "lr", "bbox/AP", "segm/AP"} <= set().union(*lines)
    assert [d["iteration"] for d in lines if "bbox/AP" in d] == [1, 3]

    checkpoint = torch.load(out / "model_final.pth", map_location="cpu", weights_only=True)
    assert checkpoint["iteration"] == 3 and checkpoint["config"] == (out / "config.yaml").read_text()
    assert Checkpointer.read(out / "model_final.pth")["model"].keys() == checkpoint["model"].keys()

    assert _png_is_not_blank(out / "curves.png")
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"bbox", "segm"}
    assert all(0.0 <= results[t]["AP"] <= 100.0 or results[t]["AP"] != results[t]["AP"] for t in results)
    assert results == final_results(out / "metrics.jsonl")

    predictions = sorted((out / "predictions").glob("*.png"))
    assert len(predictions) == 2 and all(p.read_bytes()[:8] == PNG for p in predictions)
    assert (out / "predictions" / "coco_instances_results.json").is_file()

    assert "bbox" in summary and "segm" in summary and "wall time:" in summary
    assert f"dt predict --config {out / 'config.yaml'} --weights {out / 'model_final.pth'}" in summary
    assert str(out) in summary
