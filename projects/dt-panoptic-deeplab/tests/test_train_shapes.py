"""Slow: a short Panoptic-DeepLab run on the shapes panoptic split raises PQ above the untrained model's."""

import json
import time

import pytest

import dt_panoptic_deeplab
from dt_data.datasets import register_shapes
from dt_engine.config.experiment import load_experiment
from dt_panoptic_deeplab.trainer import PanopticDeepLabTrainer

ITERATIONS = 600


@pytest.mark.slow
def test_training_on_shapes_raises_pq(tmp_path):
    register_shapes("pdl_shapes", num_train=200, num_val=20, image_size=128, root=tmp_path / "data")
    cfg = load_experiment(
        dt_panoptic_deeplab.config_path("panoptic_deeplab_shapes_cpu.yaml"),
        [
            "data.datasets.train=[pdl_shapes_train_panoptic]",
            "data.datasets.test=[pdl_shapes_val_panoptic]",
            f"solver.max_iter={ITERATIONS}",
            f"output_dir={tmp_path / 'out'}",
        ],
    )
    trainer = PanopticDeepLabTrainer(cfg)
    trainer.check()
    before = trainer.test(trainer.build_model())["panoptic_seg"]["PQ"]
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    records = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    final = next(r for r in reversed(records) if "panoptic_seg/PQ" in r)
    print(
        f"Panoptic-DeepLab shapes: {ITERATIONS} iterations in {seconds:.0f} s, PQ {before:.1f} -> "
        f"{final['panoptic_seg/PQ']:.1f} (things {final['panoptic_seg/PQ_th']:.1f}, stuff "
        f"{final['panoptic_seg/PQ_st']:.1f}), mIoU {final['sem_seg/mIoU']:.1f}"
    )
    assert final["panoptic_seg/PQ"] > before + 10
    assert final["panoptic_seg/PQ_th"] > 0
