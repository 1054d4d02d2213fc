"""End to end: ``dt train``/``eval``/``predict``/``plot`` on tiny subsets of the built-in shapes dataset."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from engine_tiny_datasets import register_tiny_datasets

from dt_data import DatasetCatalog
from dt_engine.checkpoint import Checkpointer
from dt_engine.cli import main
from dt_engine.config.experiment import load_experiment

HERE = Path(__file__).parent
CONFIG = str(HERE / "engine_tiny_rcnn.yaml")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    register_tiny_datasets()
    out = tmp_path_factory.mktemp("run") / "out"
    assert main(["train", "--config", CONFIG, f"output_dir={out}"]) == 0
    return out


def test_train_writes_checkpoints_metrics_config(trained):
    names = {p.name for p in trained.iterdir()}
    assert {"config.yaml", "metrics.jsonl", "model_0000001.pth", "model_final.pth", "model_best.pth"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    saved = load_experiment(trained / "config.yaml")
    assert saved.seed == 3 and saved.output_dir == str(trained)
    assert (trained / "config.yaml").read_text() == Checkpointer.read(trained / "model_final.pth")["config"]
    lines = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert {"total_loss", "loss_cls", "loss_mask", "lr", "val_total_loss", "val_loss_cls"} <= set().union(
        *lines
    )
    assert [d["iteration"] for d in lines if "bbox/AP" in d] == [1, 2]
    assert Checkpointer.read(trained / "model_final.pth")["iteration"] == 2


def test_resume_after_the_end_only_evaluates(trained, tmp_path):
    run = tmp_path / "again"
    shutil.copytree(trained, run)
    before = (run / "model_final.pth").read_bytes()
    assert main(["train", "--config", str(run / "config.yaml"), "--resume", f"output_dir={run}"]) == 0
    assert (run / "model_final.pth").read_bytes() == before
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert sum("bbox/AP" in d for d in lines) == 3


def test_eval_and_predict(trained, tmp_path, capsys):
    capsys.readouterr()
    assert (
        main(
            [
                "eval",
                "--config",
                CONFIG,
                "--weights",
                str(trained / "model_final.pth"),
                f"output_dir={tmp_path}",
            ]
        )
        == 0
    )
    results = json.loads(capsys.readouterr().out)
    assert set(results) == {"bbox", "segm"} and "AP" in results["bbox"]
    final = str(trained / "model_final.pth")
    assert main(["eval", "--config", CONFIG, "--weights", final, "--ema", f"output_dir={tmp_path}"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"bbox", "segm"}
    plain = tmp_path / "plain.pth"
    torch.save({"model": torch.load(final, weights_only=True)["model"]}, plain)
    assert main(["eval", "--config", CONFIG, "--weights", str(plain), "--ema", f"output_dir={tmp_path}"]) == 2
    assert "has no EMA weights" in capsys.readouterr().err
    images = tmp_path / "images"
    images.mkdir()
    for record in DatasetCatalog.get("engine_shapes_val2"):
        shutil.copy(record["file_name"], images)
    preds = tmp_path / "preds"
    argv = ["predict", "--config", CONFIG, "--weights", str(trained / "model_final.pth")]
    assert main([*argv, "--input", str(images), "--output", str(preds), "--confidence", "0.0"]) == 0
    pngs = sorted(preds.glob("*.png"))
    assert len(pngs) == 2 and all(p.read_bytes().startswith(PNG) for p in pngs)
    coco = json.loads((preds / "coco_instances_results.json").read_text())
    assert coco and {"image_id", "category_id", "bbox", "score", "segmentation", "file_name"} <= set(coco[0])
    assert {r["image_id"] for r in coco} <= {0, 1}
    glob_out = tmp_path / "glob"
    assert main([*argv, "--input", str(images / "*.jpg"), "--output", str(glob_out)]) == 0
    assert len(list(glob_out.glob("*.png"))) == 2


def test_plot_from_config(trained, capsys):
    assert main(["plot", "--config", str(trained / "config.yaml")]) == 0
    assert (trained / "losses.png").read_bytes().startswith(PNG)
    assert (trained / "eval_ap.png").exists()


TRAIN = ["train", "--config", CONFIG, "output_dir={out}"]  # a wrong input must not touch {out}
PREDICT = ["predict", "--config", CONFIG, "--weights", "{out}/model_final.pth"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*TRAIN, "solver.base_lrr=1"], "$.solver.base_lrr: unknown key (did you mean 'base_lr'?)"),
        ([*TRAIN, "data.datasets.train=[shapes_trian]"], "unknown dataset 'shapes_trian' (did you mean"),
        ([*TRAIN, "model.roi_heads.num_classes=2"], "has 5 classes, model.roi_heads.num_classes is 2"),
        (["train", "--config", "missing.yaml"], "missing.yaml: config file not found"),
        ([*TRAIN, "--weights", "nope.pth"], "weights file not found: nope.pth"),
        ([*TRAIN, "--dist-timeout", "0"], "--dist-timeout must be > 0 minutes, got 0.0"),
        (["eval", "--config", CONFIG, "--weights", "nope.pth"], "checkpoint not found: nope.pth"),
        (
            [
                "predict",
                "--config",
                CONFIG,
                "--weights",
                "{out}/model_final.pth",
                "--input",
                "no.png",
                "--output",
                "p",
            ],
            "image not found: no.png",
        ),
        (["train", "--config", CONFIG, "output_dir={out}/model_final.pth/sub"], "is not writable"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_keeps_outputs(trained, capsys, argv, message):
    snapshot = {p.name: p.read_bytes() for p in trained.iterdir() if p.is_file()}
    argv = [a.replace("{out}", str(trained)) for a in argv]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and message in err
    assert all(line.startswith(f"dt {argv[0]}: error: ") for line in err.splitlines())
    assert {p.name: p.read_bytes() for p in trained.iterdir() if p.is_file()} == snapshot
    assert torch.load(trained / "model_final.pth", weights_only=True)["iteration"] == 2


def test_train_with_bfloat16_amp_on_cpu(tmp_path):
    """AMP on the CPU (bfloat16 autocast) trains the real Mask R-CNN: dt-ops take reduced precision."""
    register_tiny_datasets()
    out = tmp_path / "amp"
    overrides = [f"output_dir={out}", "solver.amp.enabled=true", "solver.max_iter=2", "test.eval_period=0"]
    assert main(["train", "--config", CONFIG, *overrides]) == 0
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [d["total_loss"] for d in lines if "total_loss" in d]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
