"""Slow: a short Panoptic-DeepLab run on the shapes panoptic split raises PQ above the untrained model's.

Measured on a 2-core AMD EPYC (AVX2), 1 thread, other jobs on the machine: PQ 0.2 -> 21.6 at 200
iterations, 23.3 at 400, 24.1 at 600 (885 s), all of it from the stuff classes (PQ_st 84.2, PQ_th 0.0:
the thing instances are not recovered yet in this budget). The threshold keeps a margin of 8 points.
"""

import json
import time

import pytest

import dt_panoptic_deeplab
from dt_data.datasets import register_shapes
from dt_engine.config.experiment import load_experiment
from dt_panoptic_deeplab.trainer import PanopticDeepLabTrainer

ITERATIONS = 400


@pytest.mark.slow
def test_training_on_shapes_raises_pq(tmp_path):
    register_shapes("pdl_shapes", num_train=200, num_val=20, image_size=128, root=tmp_path / "data")
    cfg = load_experiment(
        dt_panoptic_deeplab.config_path("panoptic_deeplab_shapes_cpu.yaml"),
        [
            "data.datasets.train=[pdl_shapes_train_panoptic]",
            "data.datasets.test=[pdl_shapes_val_panoptic]",
            f"solver.max_iter={ITERATIONS}",
            f"test.eval_period={ITERATIONS // 3}",
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
    curve = [(r["iteration"] + 1, round(r["panoptic_seg/PQ"], 1)) for r in records if "panoptic_seg/PQ" in r]
    final = next(r for r in reversed(records) if "panoptic_seg/PQ" in r)
    print(
        f"Panoptic-DeepLab shapes: {ITERATIONS} iterations in {seconds:.0f} s, PQ {before:.1f} -> "
        f"{final['panoptic_seg/PQ']:.1f} (things {final['panoptic_seg/PQ_th']:.1f}, stuff "
        f"{final['panoptic_seg/PQ_st']:.1f}), mIoU {final['sem_seg/mIoU']:.1f} (PQ by iteration: {curve})"
    )
    assert final["panoptic_seg/PQ"] > before + 15
    assert final["panoptic_seg/PQ_st"] > 50
