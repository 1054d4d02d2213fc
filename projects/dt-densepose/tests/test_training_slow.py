"""End to end on the synthetic shapes set: the shapes recipe (600 iterations, batch 4, 2-core CPU) raises
GPS AP and segmentation mIoU on the minival set above the untrained model's and above an early
checkpoint's (the evaluation at iteration 200)."""

from __future__ import annotations

import json
import time

import pytest
import torch

import dt_densepose
from dt_engine.config.experiment import load_experiment
from dt_engine.defaults import build_workflow

EARLY = 200
OVERRIDES = ["data.datasets.test=[densepose_shapes_minival]", f"test.eval_period={EARLY}"]


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
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evals = {r["iteration"] + 1: r for r in records if "densepose_gps/AP" in r}
    early, final = evals[EARLY], evals[cfg.solver.max_iter]
    keys = ("densepose_gps/AP", "densepose_gpsm/AP", "densepose_segm/mIoU", "bbox/AP")
    curve = {i: {k: r.get(k) for k in keys} for i, r in evals.items()}
    print(json.dumps({"iterations": cfg.solver.max_iter, "train_seconds": round(seconds), "before": before,
                      "by_iteration": curve}))  # fmt: skip
    assert final["densepose_gps/AP"] > before["densepose_gps"]["AP"]
    assert final["densepose_gps/AP"] > early["densepose_gps/AP"]
    assert final["densepose_segm/mIoU"] > before["densepose_segm"]["mIoU"]
