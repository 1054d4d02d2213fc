"""Slow: DeepLabV3+ trained on the shapes semantic split learns the five shape classes, not only sky
and ground: mIoU rises above the untrained model's, above its own first evaluation (iteration EARLY)
and past a fixed floor, and the shape classes' mean IoU passes a floor of its own.

Measured on a 2-core AMD EPYC (AVX512), 1 thread, with about 12 other processes on the machine:
2000 iterations in 242 s of CPU (1106 s wall; about 2 min idle on 2 cores), mIoU 5.5 untrained ->
29.7 at 500 (circle 19, hexagon 7, triangle 3, square and star 0) -> 32.3 at 1000 -> 39.4 at 1500
-> 40.7 at 2000 (fwIoU 85.8; circle 25.8, square 16.8, triangle 18.9, star 14.4, hexagon 17.2;
sky and ground about 95). A second run of the recipe gave 40.6 (shape IoUs 13-29). At 150
iterations, the earlier budget, only sky and ground are learnt (mIoU 22, shape IoU 0). The bounds
keep a margin of 5 to 9 points below the measured run.
"""

import json
import time

import pytest

import dt_deeplab
from dt_data.datasets import register_shapes
from dt_data.datasets.shapes import SHAPES_CATEGORIES
from dt_deeplab.trainer import DeepLabTrainer
from dt_engine.config.experiment import load_experiment

ITERATIONS = 2000  # the recipe's max_iter
EARLY = ITERATIONS // 4  # the first evaluation
RISE, EARLY_RISE, FLOOR = 30.0, 5.0, 34.0  # mIoU points (measured: +35.2, +11.0, 40.7)
SHAPES = [c["name"] for c in SHAPES_CATEGORIES if c["isthing"]]
SHAPE_FLOOR = 10.0  # mean IoU of the five shape classes (measured 18.6); 0 if only sky/ground are learnt


@pytest.mark.slow
def test_training_on_shapes_raises_miou(tmp_path):
    register_shapes("deeplab_shapes", num_train=200, num_val=20, image_size=128, root=tmp_path / "data")
    cfg = load_experiment(
        dt_deeplab.config_path("deeplab_v3_plus_shapes_cpu.yaml"),
        [
            "data.datasets.train=[deeplab_shapes_train_sem_seg]",
            "data.datasets.test=[deeplab_shapes_val_sem_seg]",
            f"solver.max_iter={ITERATIONS}",
            f"test.eval_period={EARLY}",
            f"output_dir={tmp_path / 'out'}",
        ],
    )
    trainer = DeepLabTrainer(cfg)
    trainer.check()
    before = trainer.test(trainer.build_model())["sem_seg"]["mIoU"]
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer.train()
    seconds = time.perf_counter() - start
    records = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    evals = {r["iteration"] + 1: r for r in records if "sem_seg/mIoU" in r}
    curve = {i: round(r["sem_seg/mIoU"], 1) for i, r in evals.items()}
    final = evals[ITERATIONS]
    shape_ious = {name: round(final[f"sem_seg/IoU-{name}"], 1) for name in SHAPES}
    shape_miou = sum(final[f"sem_seg/IoU-{name}"] for name in SHAPES) / len(SHAPES)
    print(
        f"DeepLabV3+ shapes: {ITERATIONS} iterations in {seconds:.0f} s wall, "
        f"{time.process_time() - cpu_start:.0f} s CPU, mIoU {before:.1f} -> {final['sem_seg/mIoU']:.1f} "
        f"(by iteration: {curve}), fwIoU {final['sem_seg/fwIoU']:.1f}, shape IoUs "
        f"{shape_ious} (mean {shape_miou:.1f})"
    )
    assert final["sem_seg/mIoU"] > before + RISE
    assert final["sem_seg/mIoU"] > evals[EARLY]["sem_seg/mIoU"] + EARLY_RISE
    assert final["sem_seg/mIoU"] > FLOOR
    assert shape_miou > SHAPE_FLOOR
