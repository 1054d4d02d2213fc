"""Slow: a short DeepLabV3+ run on the shapes semantic split raises mIoU well above the untrained model's."""

import json
import time

import pytest

import dt_deeplab
from dt_data.datasets import register_shapes
from dt_deeplab.trainer import DeepLabTrainer
from dt_engine.config.experiment import load_experiment

ITERATIONS = 300


@pytest.mark.slow
def test_training_on_shapes_raises_miou(tmp_path):
    register_shapes("deeplab_shapes", num_train=200, num_val=20, image_size=128, root=tmp_path / "data")
    cfg = load_experiment(
        dt_deeplab.config_path("deeplab_v3_plus_shapes_cpu.yaml"),
        [
            "data.datasets.train=[deeplab_shapes_train_sem_seg]",
            "data.datasets.test=[deeplab_shapes_val_sem_seg]",
            f"solver.max_iter={ITERATIONS}",
            f"output_dir={tmp_path / 'out'}",
        ],
    )
    trainer = DeepLabTrainer(cfg)
    trainer.check()
    before = trainer.test(trainer.build_model())["sem_seg"]["mIoU"]
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    records = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    after = next(r["sem_seg/mIoU"] for r in reversed(records) if "sem_seg/mIoU" in r)
    print(f"DeepLabV3+ shapes: {ITERATIONS} iterations in {seconds:.0f} s, mIoU {before:.1f} -> {after:.1f}")
    assert after > before + 20
