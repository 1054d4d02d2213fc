"""dt-models training-step speed on CPU (torch at 2 threads): median of 5 timed steps after 2 warm-ups.

(c) One step (forward, backward, SGD update) of the full-width Mask R-CNN R50-FPN (detectron2's
mask_rcnn_R_50_FPN_3x architecture, 80 classes, frozen BN, freeze_at=2) at batch 2 on 512x512
images with 3 box+polygon instances each. Weights are random, with frozen-BN statistics set to
their inputs' per-channel mean and variance in one forward pass (see ``inference.py``). Runs in
a spawned process so the peak memory (max RSS) is the step's own. Prints JSON.

    python benchmarks/train_step.py [--runs 5] [--warmup 2] [--ablation]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp

import torch
from inference import (
    astronaut_bgr,
    calibrate_frozen_bn,
    full_width_config,
    summarize,
    time_runs,
    with_detectron2_execution,
)

# three objects per image: (class, XYXY box); each mask is the box's inscribed octagon
OBJECTS = [
    (0, (60.0, 40.0, 300.0, 500.0)),
    (27, (320.0, 200.0, 470.0, 330.0)),
    (56, (30.0, 380.0, 200.0, 505.0)),
]


def _octagon(x1: float, y1: float, x2: float, y2: float) -> list[float]:
    dx, dy = (x2 - x1) * 0.3, (y2 - y1) * 0.3
    xs = (x1 + dx, x2 - dx, x2, x2, x2 - dx, x1 + dx, x1, x1)
    ys = (y1, y1, y1 + dy, y2 - dy, y2, y2, y2 - dy, y1 + dy)
    points = zip(xs, ys, strict=True)
    return [c for p in points for c in p]


def make_batch(size: int = 512) -> list[dict]:
    """Two images (the astronaut and its mirror) with 3 box + polygon instances each."""
    from dt_structures import Boxes, Instances, PolygonMasks

    image = astronaut_bgr(size)
    batch = []
    for flip in (False, True):
        boxes = [b for _, b in OBJECTS]
        if flip:
            boxes = [(size - x2, y1, size - x1, y2) for x1, y1, x2, y2 in boxes]
        inst = Instances((size, size))
        inst.gt_boxes = Boxes(torch.tensor(boxes))
        inst.gt_classes = torch.tensor([c for c, _ in OBJECTS])
        inst.gt_masks = PolygonMasks([[_octagon(*b)] for b in boxes])
        batch.append({"image": image.flip(-1) if flip else image, "instances": inst})
    return batch


def run(runs: int, warmup: int, ablation: bool) -> dict:
    torch.set_num_threads(2)
    from dt_models import build_model

    torch.manual_seed(0)
    model = build_model(full_width_config())
    batch = make_batch()
    model.eval()
    calibrate_frozen_bn(model, batch)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.002, momentum=0.9, weight_decay=1e-4)
    last_losses: dict[str, float] = {}

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        losses = model(batch)
        sum(losses.values()).backward()
        optimizer.step()
        last_losses.update({k: round(v.item(), 4) for k, v in losses.items()})

    variants = {"dt": step, "detectron2_style": with_detectron2_execution(step)} if ablation else {"dt": step}
    times = time_runs(variants, runs, warmup)
    return {**summarize(times, "train_step"), "losses": last_losses}


def _child(runs, warmup, ablation, queue):
    try:
        queue.put(run(runs, warmup, ablation))
    except Exception as e:  # reported in the JSON, not swallowed
        queue.put({"case": "train_step", "error": f"{type(e).__name__}: {e}"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--ablation", action="store_true", help="also time detectron2-style execution (unfolded BN, NCHW)"
    )
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(args.runs, args.warmup, args.ablation, queue))
    proc.start()
    result = queue.get()
    proc.join()
    print(
        json.dumps(
            {"benchmark": "train_step", "torch": torch.__version__, "threads": 2, "results": [result]},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
