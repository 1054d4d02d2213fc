"""``dt predict`` (the command's ``main``) on a DensePose model draws and records DensePose outputs
through the ``densepose`` prediction output, found through its entry point ``dt_engine.prediction_output``.

The model is the shapes recipe with random weights, except that its box deltas are zero (detections
are anchors, at least 16 px) and its DensePose predictor says "foreground, part 1" everywhere (zero
weights, biases favouring those channels), so every detection's box is known to be coloured."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

import dt_densepose
from dt_densepose.visualize import decode_iuv_png
from dt_engine.cli import main
from dt_engine.config.experiment import load_experiment
from dt_engine.prediction_outputs import PREDICTION_OUTPUTS
from dt_models import build_model

CONFIG = str(dt_densepose.config_path("densepose_shapes_cpu.yaml"))
PREDICTOR = "roi_heads.branches.densepose.predictor"


def _weights(path: Path) -> None:
    torch.manual_seed(0)
    state = build_model(load_experiment(CONFIG).model).state_dict()
    for name in ("proposal_generator.rpn_head.anchor_deltas", "roi_heads.box_predictor.bbox_pred"):
        state[f"{name}.weight"].zero_()
        state[f"{name}.bias"].zero_()
    for name, favoured in (("ann_index_lowres", 1), ("index_uv_lowres", 1)):
        state[f"{PREDICTOR}.{name}.weight"].zero_()
        bias = torch.full_like(state[f"{PREDICTOR}.{name}.bias"], -10.0)
        bias[favoured] = 10.0
        state[f"{PREDICTOR}.{name}.bias"] = bias
    torch.save({"model": state}, path)


def _photo(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 40, (96, 128, 3), dtype=np.uint8)
    cv2.rectangle(image, (20, 16), (60, 70), (30, 200, 220), -1)
    cv2.circle(image, (95, 50), 18, (220, 60, 60), -1)
    cv2.imwrite(str(path), image)


def test_the_densepose_output_comes_from_the_entry_point():
    assert PREDICTION_OUTPUTS.get("densepose").results_file == "densepose_results.json"


def test_dt_predict_draws_and_records_densepose(tmp_path, capsys):
    _weights(tmp_path / "w.pth")
    (tmp_path / "photos").mkdir()
    _photo(tmp_path / "photos" / "p0.png", 0)
    preds = tmp_path / "preds"
    argv = ["predict", "--config", CONFIG, "--weights", str(tmp_path / "w.pth"), "--confidence", "0"]
    argv += ["--input", str(tmp_path / "photos"), "--output", str(preds)]
    assert main([*argv, "model.roi_heads.detections_per_image=5", "test.detections_per_image=5"]) == 0
    assert capsys.readouterr().out.strip() == f"1 images -> {preds}"
    assert {p.name for p in preds.iterdir()} == {
        "p0.png", "coco_instances_results.json", "densepose_results.json",
    }  # fmt: skip

    records = json.loads((preds / "densepose_results.json").read_text())
    coco = json.loads((preds / "coco_instances_results.json").read_text())
    assert 0 < len(records) == len(coco) <= 5
    assert [(r["image_id"], r["bbox"], r["score"]) for r in records] == [
        (r["image_id"], r["bbox"], r["score"]) for r in coco
    ]
    assert {r["category_name"] for r in records} == {"shape"}
    for record in records:
        iuv = decode_iuv_png(record["densepose"]["iuv_png"])
        width, height = record["bbox"][2:]
        assert record["densepose"]["size"] == list(iuv.shape[1:])  # the box's pixel size
        assert abs(iuv.shape[1] - height) <= 1 and abs(iuv.shape[2] - width) <= 1
        assert (iuv[0] == 1).all()  # foreground, part 1 everywhere

    # every detection's box is coloured inside (a margin away from the boxes' outlines)
    inside = np.zeros((96, 128), bool)
    for record in records:
        x, y, w, h = (int(round(t)) for t in record["bbox"])
        inside[y + 2 : y + h - 2, x + 2 : x + w - 2] = True
    drawn = cv2.imread(str(preds / "p0.png"))[inside].astype(int)
    photo = cv2.imread(str(tmp_path / "photos" / "p0.png"))[inside].astype(int)
    assert inside.sum() >= 20 and (np.abs(drawn - photo).max(axis=1) > 10).mean() > 0.9
