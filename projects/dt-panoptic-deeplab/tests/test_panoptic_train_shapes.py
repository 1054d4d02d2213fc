"""Slow: Panoptic-DeepLab trained on the shapes panoptic split finds the shapes as things: PQ rises
above the untrained model's and above its own first evaluation (iteration EARLY), and both the stuff
and the thing classes pass a floor (PQ_th is 0 if only sky and ground are learnt).

Measured on a 2-core AMD EPYC (AVX512), 1 thread, with about 12 other processes on the machine:
2000 iterations in 408 s of CPU (1649 s wall; about 3.5 min idle on 2 cores). PQ (PQ_th, PQ_st,
mIoU) 0.0 untrained -> 31.3 (7.9, 89.8, 31.9) at 500 -> 36.8 (13.7, 94.6, 33.2) at 1000 -> 42.9
(21.6, 96.1, 39.5) at 1500 -> 49.7 (30.9, 96.5, 47.1) at 2000, where the shape IoUs are 17-35
(circle 35.0, square 25.7, triangle 26.2, star 32.6, hexagon 16.8) and SQ_th 83.9, RQ_th 37.1.
At 150 iterations, the earlier budget, only stuff is found (PQ 20, PQ_th 0). The bounds keep a
margin of 10 to 16 points below the measured run.
"""

import json
import time

import pytest

import dt_panoptic_deeplab
from dt_data.datasets import register_shapes
from dt_engine.config.experiment import load_experiment
from dt_panoptic_deeplab.trainer import PanopticDeepLabTrainer

ITERATIONS = 2000  # the recipe's max_iter
EARLY = ITERATIONS // 4  # the first evaluation
RISE, EARLY_RISE = 35.0, 8.0  # PQ points (measured: +49.7, +18.4)
STUFF_FLOOR, THING_FLOOR = 85.0, 15.0  # PQ_st and PQ_th (measured: 96.5, 30.9)


@pytest.mark.slow
def test_training_on_shapes_raises_pq(tmp_path):
    register_shapes("pdl_shapes", num_train=200, num_val=20, image_size=128, root=tmp_path / "data")
    cfg = load_experiment(
        dt_panoptic_deeplab.config_path("panoptic_deeplab_shapes_cpu.yaml"),
        [
            "data.datasets.train=[pdl_shapes_train_panoptic]",
            "data.datasets.test=[pdl_shapes_val_panoptic]",
            f"solver.max_iter={ITERATIONS}",
            f"test.eval_period={EARLY}",
            f"output_dir={tmp_path / 'out'}",
        ],
    )
    trainer = PanopticDeepLabTrainer(cfg)
    trainer.check()
    before = trainer.test(trainer.build_model())["panoptic_seg"]["PQ"]
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer.train()
    seconds = time.perf_counter() - start
    records = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    evals = {r["iteration"] + 1: r for r in records if "panoptic_seg/PQ" in r}
    curve = {i: round(r["panoptic_seg/PQ"], 1) for i, r in evals.items()}
    final = evals[ITERATIONS]
    things = {i: round(r["panoptic_seg/PQ_th"], 1) for i, r in evals.items()}
    print(
        f"Panoptic-DeepLab shapes: {ITERATIONS} iterations in {seconds:.0f} s wall, "
        f"{time.process_time() - cpu_start:.0f} s CPU, PQ {before:.1f} -> {final['panoptic_seg/PQ']:.1f} "
        f"(things {final['panoptic_seg/PQ_th']:.1f}, stuff {final['panoptic_seg/PQ_st']:.1f}), "
        f"mIoU {final['sem_seg/mIoU']:.1f} (PQ by iteration: {curve}; PQ_th: {things})"
    )
    assert final["panoptic_seg/PQ"] > before + RISE
    assert final["panoptic_seg/PQ"] > evals[EARLY]["panoptic_seg/PQ"] + EARLY_RISE
    assert final["panoptic_seg/PQ_st"] > STUFF_FLOOR
    assert final["panoptic_seg/PQ_th"] > THING_FLOOR
