"""dt-vitdet's narrow recipes on CPU (torch at 2 threads): inference and one training step.

Cases, each built from its shipped config (``projects/dt-vitdet/src/dt_vitdet/configs/shapes``) with
random weights:

- ``vit_mask_rcnn_inference`` / ``vit_mask_rcnn_train_step``: ``mask_rcnn_vitdet_narrow.yaml`` (a
  4-block, 32-wide ViT with a simple feature pyramid, Mask R-CNN, 5 classes);
- ``mvitv2_cascade_inference`` / ``mvitv2_cascade_train_step``: ``cascade_mask_rcnn_mvitv2_narrow.yaml``
  (a 5-block, 8-wide MViTv2 + FPN, Cascade Mask R-CNN).

Inference runs on scikit-image's astronaut at the recipes' 128 x 128 (RGB); a training step (forward,
backward, and the recipe's own AdamW with layer-wise decay and weight-decay rules) runs at batch 2 on it
and its mirror, with ``_cases.py``'s three objects scaled to 128 px (boxes and octagon polygons). Times
are the median of ``--runs`` after ``--warmup`` calls (``inference.time_runs``); each case runs in its
own spawned process, so its peak memory (max RSS) is its own. Prints JSON with the machine
(``_machine.machine_info``).

    python benchmarks/vitdet.py [--cases vit_mask_rcnn_inference,...] [--runs 5] [--warmup 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics

import torch
from _cases import OBJECTS, TRAIN_SIZE, astronaut_bgr, octagon
from _machine import machine_info
from inference import time_runs

SIZE = 128  # the narrow recipes' LSJ image size and square padding
CONFIGS = {"vit_mask_rcnn": "shapes/mask_rcnn_vitdet_narrow.yaml",
           "mvitv2_cascade": "shapes/cascade_mask_rcnn_mvitv2_narrow.yaml"}  # fmt: skip
CASES = {f"{model}_{kind}": (model, kind) for model in CONFIGS for kind in ("inference", "train_step")}


def batch(training: bool, num_classes: int) -> list[dict]:
    """The astronaut at ``SIZE`` (RGB); for training also its mirror, each with the three objects."""
    from dt_structures import Boxes, Instances, PolygonMasks

    image = astronaut_bgr(SIZE).flip(0)  # [3, SIZE, SIZE] uint8, RGB
    if not training:
        return [{"image": image}]
    boxes = torch.tensor([b for _, b in OBJECTS]) * (SIZE / TRAIN_SIZE)  # [3, 4] XYXY
    mirrored = torch.stack([SIZE - boxes[:, 2], boxes[:, 1], SIZE - boxes[:, 0], boxes[:, 3]], dim=1)
    inputs = []
    for picture, xyxy in ((image, boxes), (image.flip(-1), mirrored)):
        instances = Instances((SIZE, SIZE))
        instances.gt_boxes = Boxes(xyxy)
        instances.gt_classes = torch.tensor([c % num_classes for c, _ in OBJECTS])
        instances.gt_masks = PolygonMasks([[torch.tensor(octagon(*b.tolist())).numpy()] for b in xyxy])
        inputs.append({"image": picture, "instances": instances})
    return inputs


def run_case(name: str, runs: int, warmup: int) -> dict:
    """Build the case's model from its config and time it in this process; its JSON result."""
    import dt_vitdet
    from dt_engine.build import build_optimizer
    from dt_engine.config.experiment import load_experiment
    from dt_models import build_model

    torch.set_num_threads(2)
    torch.manual_seed(0)
    model_name, kind = CASES[name]
    cfg = load_experiment(dt_vitdet.get_config_file(CONFIGS[model_name]))
    model = build_model(cfg.model)
    inputs = batch(kind == "train_step", cfg.model.roi_heads.num_classes)
    result: dict = {}
    if kind == "inference":
        model.eval()

        def call() -> None:
            with torch.inference_mode():
                result["detections"] = len(model(inputs)[0]["instances"])
    else:
        model.train()
        optimizer = build_optimizer(model, cfg.solver)

        def call() -> None:
            optimizer.zero_grad(set_to_none=True)
            losses = model(inputs)
            sum(losses.values()).backward()
            optimizer.step()
            result["losses"] = {k: round(v.item(), 4) for k, v in losses.items()}

    wall = time_runs({"dt": call}, runs, warmup)["dt"]
    return {
        "case": name,
        "config": CONFIGS[model_name],
        "parameters": sum(p.numel() for p in model.parameters()),
        "input": f"{len(inputs)} x 3 x {SIZE} x {SIZE}",
        "median_s": round(statistics.median(wall["wall"]), 4),
        "min_s": round(min(wall["wall"]), 4),
        "runs_s": [round(t, 4) for t in wall["wall"]],
        "median_cpu_s": round(statistics.median(wall["cpu"]), 4),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    names = args.cases.split(",")
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}; expected one of: {', '.join(CASES)}")
    results = []
    for name in names:  # a fresh process per case (its own peak memory)
        with mp.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
            results.append(pool.apply(run_case, (name, args.runs, args.warmup)))
    torch.set_num_threads(2)
    print(json.dumps({"benchmark": "vitdet", "machine": machine_info(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
