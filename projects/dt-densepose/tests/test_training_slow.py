"""End to end on the synthetic shapes set: the shapes recipe (600 iterations, batch 4, 2-core CPU) raises
GPS AP and segmentation mIoU on the minival set above the untrained model's."""

from __future__ import annotations

import json
import time

import pytest
import torch

import dt_densepose
from dt_engine.config.experiment import load_experiment
from dt_engine.defaults import build_workflow
from dt_engine.weights import load_model_weights

OVERRIDES = ["data.datasets.test=[densepose_shapes_minival]"]


@pytest.mark.slow
def test_training_on_shapes_raises_gps_ap(tmp_path):
    config = dt_densepose.config_path("densepose_shapes_cpu.yaml")
    cfg = load_experiment(str(config), [*OVERRIDES, f"output_dir={tmp_path}"])
    workflow = build_workflow(cfg)
    workflow.check()
    torch.manual_seed(cfg.seed)
    before = workflow.test(workflow.build_model().eval())
    start = time.perf_counter()
    workflow.train()
    seconds = time.perf_counter() - start
    model = workflow.build_model()
    load_model_weights(model, str(tmp_path / "model_final.pth"))
    after = workflow.test(model.eval())
    print(json.dumps({"iterations": cfg.solver.max_iter, "train_seconds": round(seconds),
                      "before": before, "after": after}))  # fmt: skip
    assert after["densepose_gps"]["AP"] > before["densepose_gps"]["AP"]
    assert after["densepose_segm"]["mIoU"] > before["densepose_segm"]["mIoU"]
